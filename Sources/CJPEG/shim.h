#include <stdio.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

/* libjpeg's default error handler calls exit(); this one longjmps back here and returns a
   message. Decoding uses libjpeg's defaults (ISLOW DCT, fancy upsampling), as Pillow does.
   Output: 1-channel gray (grayscale files, Pillow's L), 3-channel RGB, or 4-channel raw CMYK (*channels = 4, *adobe_inverted set when the
   Adobe marker says the values are stored inverted). A truncated file is an error, as in Pillow. */

struct assay_jpeg_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int truncated;
};

static void assay_jpeg_error_exit(j_common_ptr cinfo) {
    struct assay_jpeg_error *e = (struct assay_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void assay_jpeg_emit(j_common_ptr cinfo, int level) {
    struct assay_jpeg_error *e = (struct assay_jpeg_error *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

static inline int assay_jpeg_decode(const unsigned char *data, size_t size, size_t max_pixels,
                                    unsigned char **out, int *width, int *height, int *channels,
                                    int *adobe_inverted, char *err) {
    struct jpeg_decompress_struct cinfo;
    struct assay_jpeg_error jerr;
    unsigned char *volatile pixels = NULL;
    *out = NULL;
    err[0] = 0;
    memset(&jerr, 0, sizeof(jerr));
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = assay_jpeg_error_exit;
    jerr.pub.emit_message = assay_jpeg_emit;
    if (setjmp(jerr.jump)) {
        snprintf(err, 256, "%s", jerr.message[0] ? jerr.message : "corrupt JPEG data");
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : (cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB);
    if ((size_t)cinfo.image_width * (size_t)cinfo.image_height > max_pixels) {
        snprintf(err, 256, "image is %ux%u pixels, more than the limit of %zu",
                 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, max_pixels);
        jpeg_destroy_decompress(&cinfo);
        return 2;
    }
    jpeg_start_decompress(&cinfo);
    int ch = cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * (size_t)ch;
    pixels = (unsigned char *)malloc(stride * cinfo.output_height + 1);
    if (!pixels) { jpeg_destroy_decompress(&cinfo); snprintf(err, 256, "out of memory"); return 1; }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * stride;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
        if (jerr.truncated) break;
    }
    if (jerr.truncated || cinfo.output_scanline < cinfo.output_height) {
        snprintf(err, 256, "image file is truncated");
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return 1;
    }
    *adobe_inverted = cmyk && cinfo.saw_Adobe_marker;
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    *channels = ch;
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *out = pixels;
    return 0;
}
