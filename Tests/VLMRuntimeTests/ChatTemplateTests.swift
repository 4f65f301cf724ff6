import Foundation
import XCTest
@testable import VLMRuntime

/// The Jinja engine behind every chat template: the two real templates (SmolLM2's from its GGUF,
/// Qwen2-VL's from its checkpoint) and the language features Hub templates use.
final class ChatTemplateTests: XCTestCase {
    static let smolLM2 = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    func render(_ source: String, _ context: [String: JinjaValue] = [:]) throws -> String {
        try JinjaTemplate(source: source).render(context)
    }

    func testSmolLM2TemplateAsJinja2RendersIt() throws {
        let t = try ChatTemplate(source: Self.smolLM2)
        XCTAssertEqual(try t.render([.user([.text("Hi")])]),
                       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(try t.render([.system("Be brief."), .user([.text("Hi")]), ChatMessage(role: "assistant", parts: [.text("Hello.")])],
                                    addGenerationPrompt: false),
                       "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n")
        // The GGUF's own copy of the template, when the model is here.
        if let path = try? GGUFFixtures.modelPath() {
            let data = try GGUFTokenizerData(metadata: GGUFFile(path: path).metadata)
            XCTAssertEqual(data.chatTemplate, Self.smolLM2)
        }
    }

    func testQwen2VLTemplateMatchesTheNativeChatMLRendering() throws {
        let dir = try Fixtures.require("goldens/qwen2_vl_tiny/checkpoint").path
        let source = try XCTUnwrap(try ChatTemplate.readTemplateSource(directory: dir))
        let qwen = try ChatTemplate(source: source)
        let fallback = ChatTemplate.fallback(defaultSystemPrompt: "You are a helpful assistant.",
                                             imagePlaceholder: "<|vision_start|><|image_pad|><|vision_end|>")
        let image = PixelImage(width: 1, height: 1, channels: 3, pixels: [0, 0, 0])
        let conversations: [[ChatMessage]] = [
            [.user([.text("Describe it.")])],
            [.user([.image(image), .text("What is this?")])],
            [.system("Terse."), .user([.text("A"), .image(image), .image(image), .text("B")])],
            [.user([.image(image)]), ChatMessage(role: "assistant", parts: [.text("A cat.")]), .user([.text("Sure?")])],
        ]
        for c in conversations {
            for prompt in [true, false] {
                XCTAssertEqual(try qwen.render(c, addGenerationPrompt: prompt), try fallback.render(c, addGenerationPrompt: prompt))
            }
        }
        XCTAssertEqual(try qwen.render(conversations[1]),
                       "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is this?<|im_end|>\n<|im_start|>assistant\n")
    }

    func testLoopsConditionsAndAssignments() throws {
        XCTAssertEqual(try render("{% for x in [3, 4, 5] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{% if loop.first %}F{% elif loop.last %}L{% else %}-{% endif %}{% endfor %}"),
                       "103F212-321L")
        XCTAssertEqual(try render("{% set ns = namespace(n=0) %}{% for x in range(4) %}{% set ns.n = ns.n + x %}{% set local = 9 %}{% endfor %}{{ ns.n }}{{ local is defined }}"),
                       "6False")
        XCTAssertEqual(try render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;")
        XCTAssertEqual(try render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty")
        XCTAssertEqual(try render("{% for x in range(10) if x is odd %}{% if x > 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "135")
        XCTAssertEqual(try render("{% for x in range(5) %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}"), "0134")
        XCTAssertEqual(try render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21")
        XCTAssertEqual(try render("{% set block %}in{{ 'side' }}{% endset %}[{{ block }}]"), "[inside]")
        XCTAssertEqual(try render("{% macro tag(name, cls='x') %}<{{ name }} {{ cls }}>{% endmacro %}{{ tag('a') }}{{ tag('b', cls='y') }}"),
                       "<a x><b y>")
    }

    func testExpressionsFiltersAndTests() throws {
        let messages: JinjaValue = .array([.dict([("role", .string("user")), ("content", .string("  hi  "))])])
        XCTAssertEqual(try render("{{ messages[0]['content'] | trim }}|{{ messages | length }}|{{ messages[0].role }}", ["messages": messages]),
                       "hi|1|user")
        XCTAssertEqual(try render("{{ 'a' ~ 1 ~ none }} {{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 7 / 2 }}"),
                       "a1None 7 3 -4 1 8 3.5")
        XCTAssertEqual(try render("{{ [1, 2, 3][::-1] }} {{ 'abcdef'[1:4] }} {{ [1, 2, 3][-1] }}"), "[3, 2, 1] bcd 3")
        XCTAssertEqual(try render("{{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ 'x' in {'x': 1} }}"), "True True True")
        XCTAssertEqual(try render("{{ x is string }} {{ x is not defined }} {{ y is none }} {{ 3 is number }} {{ {} is mapping }}", ["x": .string("s"), "y": .none]),
                       "True False True True True")
        XCTAssertEqual(try render("{{ undefinedthing | default('dflt') }} {{ '' | default('e', true) }}"), "dflt e")
        XCTAssertEqual(try render("{{ ['a', 'b'] | join(', ') }} {{ 'Hi' | upper }} {{ 'x' if false else 'y' }} {{ 'x' if true }}"), "a, b HI y x")
        XCTAssertEqual(try render("{{ {'b': [1, 'é'], 'a': none} | tojson }}"), #"{"b": [1, "é"], "a": null}"#)
        XCTAssertEqual(try render("{{ ' Text '.strip() }}{{ 'abc'.startswith('ab') }}{{ 'a,b'.split(',') }}{{ 'aXa'.replace('X', '-') }}"),
                       "TextTrue['a', 'b']a-a")
        XCTAssertEqual(try render("{{ [{'r': 'a'}, {'r': 'b'}] | selectattr('r', 'equalto', 'b') | map(attribute='r') | list }}"), "['b']")
        XCTAssertEqual(try render("{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) | first }} {{ [1, 2, 3] | sum }}"), "[1, 2, 3] 3 6")
        XCTAssertEqual(try render(#"{{ "it's" }} {{ 'say "x"' }} {{ 'a\nb' }}"#), "it's say \"x\" a\nb")
    }

    func testWhitespaceControlTrimAndLstripBlocks() throws {
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
        XCTAssertEqual(try render("{% for x in [1, 2] %}\n    {% if x %}\n{{ x }}\n    {% endif %}\n{% endfor %}\n"), "1\n2\n")
        XCTAssertEqual(try render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc")
        XCTAssertEqual(try render("a\n  {{- 'b' -}}\n  c"), "abc")
        XCTAssertEqual(try render("{# a comment #}\nx{#- another -#}  y"), "xy")
        XCTAssertEqual(try render("  {{ 'kept' }}"), "  kept", "lstrip_blocks does not touch {{ }}")
    }

    func testErrorsAreTypedAndSayWhere() throws {
        XCTAssertThrowsError(try render("{{ raise_exception('Only user and assistant roles are supported!') }}")) { error in
            XCTAssertEqual(error as? ChatTemplateError, .raised(message: "Only user and assistant roles are supported!"))
        }
        XCTAssertThrowsError(try JinjaTemplate(source: "line one\n{% for x in y %}\n{{ x }")) { error in
            guard case .syntax(let line, _)? = error as? ChatTemplateError else { return XCTFail("\(error)") }
            XCTAssertEqual(line, 3)
        }
        XCTAssertThrowsError(try JinjaTemplate(source: "{% if x %}never closed")) { error in
            guard case .syntax(1, _)? = error as? ChatTemplateError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try JinjaTemplate(source: "{% include 'other.j2' %}"))
        XCTAssertThrowsError(try render("{{ 'a' + 1 }}")) { error in
            guard case .render? = error as? ChatTemplateError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try render("{{ x | nosuchfilter }}"))
        XCTAssertThrowsError(try render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "unbounded recursion is refused")
        // Hostile nesting is a syntax error, not a stack overflow.
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ " + String(repeating: "(", count: 100_000) + "1 }}"))
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ " + String(repeating: "not ", count: 100_000) + "1 }}"))
        XCTAssertThrowsError(try JinjaTemplate(source: String(repeating: "{% if x %}", count: 100_000)))
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ 1" + String(repeating: " + 1", count: 100_000) + " }}"))
        XCTAssertThrowsError(try JinjaTemplate(source: "{{ x" + String(repeating: " | trim", count: 100_000) + " }}"))
        XCTAssertEqual(try render("{{ 1" + String(repeating: " + 1", count: 100) + " }}"), "101")
    }

    func testBosAndEosTokensReachTheTemplate() throws {
        let t = try ChatTemplate(source: "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}", bosToken: "<s>", eosToken: "</s>")
        XCTAssertEqual(try t.render([.user([.text("x")])]), "<s>x</s>")
    }
}
