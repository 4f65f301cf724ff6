#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpng reports errors by longjmp, which Swift cannot catch; this decoder keeps the setjmp on
   the C side and returns a status plus a message instead. Output is 8-bit L, LA, RGB or RGBA
   (1 to 4 channels) like Pillow's modes: palettes are expanded to RGB(A), tRNS becomes alpha,
   16-bit samples keep their high byte, no gamma correction. */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t pos;
    char *message;
} assay_png_source;

static void assay_png_read(png_structp png, png_bytep out, png_size_t n) {
    assay_png_source *src = (assay_png_source *)png_get_io_ptr(png);
    if (n > src->size - src->pos) {
        png_error(png, "unexpected end of PNG data (file truncated)");
    }
    memcpy(out, src->data + src->pos, n);
    src->pos += n;
}

static void assay_png_error(png_structp png, png_const_charp msg) {
    char *buf = (char *)png_get_error_ptr(png);
    if (buf) { snprintf(buf, 256, "%s", msg); }
    png_longjmp(png, 1);
}

static void assay_png_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

/* Returns 0 on success (then *out is malloc'd, caller frees), 1 on a decode error, 2 when the
   image has more than max_pixels pixels. err must hold 256 bytes. */
static inline int assay_png_decode(const unsigned char *data, size_t size, size_t max_pixels,
                                   unsigned char **out, int *width, int *height, int *channels, char *err) {
    *out = NULL;
    err[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) { snprintf(err, 256, "not a PNG file (bad signature)"); return 1; }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, err, assay_png_error, assay_png_warning);
    if (!png) { snprintf(err, 256, "cannot create a PNG reader"); return 1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(err, 256, "cannot create PNG info"); return 1; }
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    assay_png_source src = {data, size, 0, err};
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (!err[0]) snprintf(err, 256, "corrupt PNG data");
        return 1;
    }
    png_set_read_fn(png, &src, assay_png_read);
    png_set_user_limits(png, 1000000, 1000000);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((size_t)w * (size_t)h > max_pixels) {
        snprintf(err, 256, "image is %ux%u pixels, more than the limit of %zu", (unsigned)w, (unsigned)h, max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return 2;
    }
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_strip_16(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (ch < 1 || ch > 4 || rowbytes != (size_t)w * (size_t)ch) {
        snprintf(err, 256, "unsupported PNG layout (%d channels)", ch);
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    pixels = (unsigned char *)malloc(rowbytes * h + 1);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (h + 1));
    if (!pixels || !rows) {
        free(pixels); free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(err, 256, "out of memory");
        return 1;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *out = pixels;
    *width = (int)w;
    *height = (int)h;
    *channels = ch;
    return 0;
}
