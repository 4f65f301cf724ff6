import AssayCore
import Foundation

/// Problems writing an export.
public enum ExportError: Error, CustomStringConvertible, Equatable {
    case missingSplit(String)
    case notEmpty(String)

    public var description: String {
        switch self {
        case .missingSplit(let path): return "\(path) is missing: the data folder must hold train.jsonl (and test.jsonl) from `assay critic build`"
        case .notEmpty(let path): return "\(path) exists and is not empty; choose a new --out folder"
        }
    }
}

/// `assay train export --format easyr1`: what a GPU cluster needs to run the LLaVA-Critic-R1
/// recipe in EasyR1 (veRL on Ray) on critic data built here: the dataset (copied), a config with
/// the study's hyperparameters, the reward function as EasyR1 loads it, and the launch command.
public struct EasyR1Export {
    /// The study's GRPO settings (CRITIC-RL.md), overridable from the command line.
    public struct Hyperparameters: Sendable {
        public var model = "Qwen/Qwen2.5-VL-7B-Instruct"
        public var rolloutN = 8
        public var temperature = 1.0
        public var topP = 0.99
        public var learningRate = 1e-6
        public var weightDecay = 1e-2
        public var klCoef = 1e-2
        public var clipLow = 0.2
        public var clipHigh = 0.3
        public var dualClip = 3.0
        public var maxResponseLength = 2048
        public var maxPromptLength = 6144
        public var rolloutBatchSize = 256
        public var globalBatchSize = 128
        public var minPixels = 262_144
        public var maxPixels = 4_194_304
        public var formatWeight = 0.1
        public var epochs = 1

        public init() {}
    }

    /// The files written, relative to the export folder.
    public static let files = ["data/train.jsonl", "data/test.jsonl", "critic_reward.py", "config.yaml", "launch.sh", "README.md"]

    /// Copies `data/train.jsonl`, `data/test.jsonl` and `data/images/` from `dataDirectory` and
    /// writes the reward, config and launch script into `out` (which must be new or empty).
    public static func write(dataDirectory: URL, out: URL, hyperparameters h: Hyperparameters = Hyperparameters()) throws {
        let fm = FileManager.default
        let train = dataDirectory.appendingPathComponent("train.jsonl")
        guard fm.fileExists(atPath: train.path) else { throw ExportError.missingSplit(train.path) }
        if let contents = try? fm.contentsOfDirectory(atPath: out.path), !contents.isEmpty { throw ExportError.notEmpty(out.path) }
        let data = out.appendingPathComponent("data")
        try fm.createDirectory(at: data, withIntermediateDirectories: true)
        for name in ["train.jsonl", "test.jsonl", "images", "manifest.json"] {
            let source = dataDirectory.appendingPathComponent(name)
            if fm.fileExists(atPath: source.path) { try fm.copyItem(at: source, to: data.appendingPathComponent(name)) }
        }
        if !fm.fileExists(atPath: data.appendingPathComponent("test.jsonl").path) {
            try Data().write(to: data.appendingPathComponent("test.jsonl"))
        }
        try pythonReward(formatWeight: h.formatWeight).write(to: out.appendingPathComponent("critic_reward.py"), atomically: true, encoding: .utf8)
        try config(h).write(to: out.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        let launch = """
            #!/usr/bin/env bash
            # Run from an EasyR1 checkout (github.com/hiyouga/EasyR1) with this folder as EXPORT.
            set -euo pipefail
            EXPORT="$(cd "$(dirname "$0")" && pwd)"
            python3 -m verl.trainer.main config="$EXPORT/config.yaml" \\
              data.train_files="$EXPORT/data@train" data.val_files="$EXPORT/data@test" data.image_dir="$EXPORT/data" \\
              worker.reward.reward_function="$EXPORT/critic_reward.py:compute_score" \\
              trainer.save_checkpoint_path="$EXPORT/checkpoints" "$@"

            """
        let launchURL = out.appendingPathComponent("launch.sh")
        try launch.write(to: launchURL, atomically: true, encoding: .utf8)
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: launchURL.path)
        try readme(h).write(to: out.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
    }

    static func config(_ h: Hyperparameters) -> String {
        """
        # EasyR1 config for LLaVA-Critic-R1-style GRPO on critic data written by `assay critic build`.
        # Hyperparameters are the study's (CRITIC-RL.md) unless given to `assay train export`.
        data:
          prompt_key: problem
          answer_key: answer
          image_key: images
          max_prompt_length: \(h.maxPromptLength)
          max_response_length: \(h.maxResponseLength)
          rollout_batch_size: \(h.rolloutBatchSize)
          shuffle: true
          seed: 1
          min_pixels: \(h.minPixels)
          max_pixels: \(h.maxPixels)
          # The problems already end with the think/boxed instruction (CriticPrompt), so no format prompt.
          format_prompt: null
        algorithm:
          adv_estimator: grpo
          disable_kl: false
          use_kl_loss: true
          kl_penalty: low_var_kl
          kl_coef: \(h.klCoef)
        worker:
          actor:
            global_batch_size: \(h.globalBatchSize)
            clip_ratio_low: \(h.clipLow)
            clip_ratio_high: \(h.clipHigh)
            clip_ratio_dual: \(h.dualClip)
            loss_avg_mode: token
            model:
              model_path: \(h.model)
              freeze_vision_tower: false
            optim:
              lr: \(h.learningRate)
              weight_decay: \(h.weightDecay)
          rollout:
            n: \(h.rolloutN)
            temperature: \(h.temperature)
            top_p: \(h.topP)
            limit_images: 10
          reward:
            reward_type: batch
            reward_function_kwargs:
              format_weight: \(h.formatWeight)
        trainer:
          total_epochs: \(h.epochs)
          project_name: assay_critic
          experiment_name: critic_grpo
          logger: ["console"]
          val_before_train: true
          val_freq: 5
          save_freq: 5

        """
    }

    static func readme(_ h: Hyperparameters) -> String {
        """
        # Critic GRPO export (EasyR1)

        Written by `assay train export --format easyr1`. `data/` holds the critic prompts (`problem`, with one
        `<image>` per image), labels (`answer`: `1` or `2`, the better response as shown) and image paths
        relative to `data/`. `critic_reward.py` is the reward Assay's Swift trainer uses (0.9 accuracy +
        \(h.formatWeight) format), in EasyR1's batch reward interface. From an EasyR1 checkout:

            bash launch.sh                      # add overrides, e.g. trainer.n_gpus_per_node=8

        Checkpoints land in `checkpoints/` as Hugging Face folders; evaluate one with
        `assay sweep --model-path checkpoints/.../huggingface` or behind vLLM with `assay sweep --base-url`.

        """
    }

    /// The reward in EasyR1's batch interface (`compute_score(reward_inputs, format_weight)` over
    /// `{"response", "response_length", "ground_truth"}`), written to compute exactly what
    /// `CriticPreferenceReward` computes: code points, `str.isspace` whitespace, ASCII case folding.
    public static func pythonReward(formatWeight: Double = 0.1) -> String {
        #"""
        # Written by Assay (`assay train export`): the LLaVA-Critic-R1 critic reward, identical to
        # Assay's Swift CriticPreferenceReward (a test holds the two equal on thousands of responses).
        import re
        from typing import Any, Dict, List, Optional

        REWARD_NAME = "critic_pref"
        REWARD_TYPE = "batch"

        _TAGS = re.compile(r"\s*(<|>|/)\s*")
        _FORMAT = re.compile(r"<think>.*</think>.*\\boxed\{.*\}.*", re.DOTALL)
        _WRAPPERS = ("\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{")
        _WORDS = ("response", "answer", "output", "option")
        _LABELS = {"1": 1, "one": 1, "first": 1, "2": 2, "two": 2, "second": 2}
        _ALNUM = set("0123456789abcdefghijklmnopqrstuvwxyz")


        def _ascii_lower(text: str) -> str:
            return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


        def _strip_non_alnum(text: str) -> str:
            start, end = 0, len(text)
            while start < end and text[start] not in _ALNUM:
                start += 1
            while end > start and text[end - 1] not in _ALNUM:
                end -= 1
            return text[start:end]


        def critic_label(text: str) -> Optional[int]:
            s = _ascii_lower(text)
            for wrapper in _WRAPPERS:
                s = s.replace(wrapper, "")
            s = s.replace("}", "")
            s = _strip_non_alnum(s)
            for word in _WORDS:
                if s.startswith(word):
                    s = _strip_non_alnum(s[len(word):])
            return _LABELS.get(s)


        def extract_boxed_content(text: str) -> str:
            start = text.rfind("\\boxed{")
            if start == -1:
                return "None"
            content = text[start + len("\\boxed{"):]
            depth = 0
            for i, char in enumerate(content):
                if char == "{":
                    depth += 1
                elif char == "}":
                    depth -= 1
                if depth == -1:
                    return content[:i].strip()
            return "None"


        def _score(response: str, ground_truth: str, format_weight: float) -> Dict[str, float]:
            response = _TAGS.sub(r"\1", response)
            format_score = 1.0 if _FORMAT.fullmatch(response) else 0.0
            prediction = extract_boxed_content(response)
            gold = critic_label(ground_truth)
            accuracy = 1.0 if gold is not None and critic_label(prediction) == gold else 0.0
            return {
                "overall": (1 - format_weight) * accuracy + format_weight * format_score,
                "format": format_score,
                "accuracy": accuracy,
            }


        def compute_score(reward_inputs: List[Dict[str, Any]], format_weight: float = \#(formatWeight)) -> List[Dict[str, float]]:
            if not isinstance(reward_inputs, list):
                raise ValueError("Please use `reward_type=batch` for the critic reward function.")
            return [_score(item["response"], item["ground_truth"], format_weight) for item in reward_inputs]
        """#
    }
}
