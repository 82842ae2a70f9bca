/* Suite `dataset`: IDX files and class folders the tests write themselves (plain and gzip
 * IDX, PNG images through libpng's simplified writer), every header corruption rejected with
 * its code, pixels and normalisation against values computed here, seeded shuffling,
 * stratified split sizes, class subsets and augmentation against a naive shift/flip.  The
 * train-loop and `cnn train`/`cnn eval` cases are in check_train_loop.c. */
#include "dataset.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- fixtures ----------------------------------------------------------------------- */

static char tmpdir[64];

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* Writes bytes to path, gzip-compressed when gz. */
static void write_bytes(const char *path, const uint8_t *b, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        if (n)
            ck_assert_int_eq(gzwrite(f, b, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        if (n)
            ck_assert_uint_eq(fwrite(b, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

/* An IDX file in memory: magic 00 00 type ndims, dims, payload. Returns its length. */
static size_t idx_bytes(uint8_t *out, int type, int ndims, const uint32_t *dims,
                        const uint8_t *payload, size_t n)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = (uint8_t)type;
    out[3] = (uint8_t)ndims;
    for (int i = 0; i < ndims; i++)
        put_be32(out + 4 + 4 * i, dims[i]);
    size_t h = 4 + 4 * (size_t)ndims;
    if (n)
        memcpy(out + h, payload, n);
    return h + n;
}

/* A small IDX pair: N images of H x W, labels given. */
#define N 7
#define H 4
#define W 5
static uint8_t pix[N * H * W];
static const uint8_t lab_src[N] = {2, 0, 1, 2, 2, 0, 1};

static void fill_pixels(uint64_t seed)
{
    rng_state = seed;
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)rnd();
}

static void write_pair(const char *dir, const char *split, int gz)
{
    static uint8_t buf[64 + sizeof pix];
    char path[256];
    uint32_t dims[3] = {N, H, W};
    size_t n = idx_bytes(buf, 8, 3, dims, pix, sizeof pix);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, split, gz ? ".gz" : "");
    write_bytes(path, buf, n, gz);
    uint32_t ld[1] = {N};
    n = idx_bytes(buf, 8, 1, ld, lab_src, N);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, split, gz ? ".gz" : "");
    write_bytes(path, buf, n, gz);
}

static const struct cnn_preproc PLAIN = {.c = 1, .h = H, .w = W, .std = {1, 1, 1}};

/* ---- IDX ---------------------------------------------------------------------------- */

START_TEST(test_idx_plain_and_gzip_load_exact_pixels_labels_and_counts)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    fill_pixels(11 + (uint64_t)_i);
    write_pair(tmpdir, "train", _i);
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    char img[256], lab[256];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte%s", tmpdir, _i ? ".gz" : "");
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte%s", tmpdir, _i ? ".gz" : "");
    ck_assert_int_eq(cnn_dataset_load_idx(img, lab, &PLAIN, &d, &err), 0);
    ck_assert_int_eq(cnn_dataset_count(d), N);
    ck_assert_int_eq(cnn_dataset_num_classes(d), 3);
    ck_assert_ptr_null(cnn_dataset_class_name(d, 0));
    int counts[3] = {0};
    for (int i = 0; i < N; i++) {
        counts[lab_src[i]]++;
        ck_assert_int_eq(cnn_dataset_label(d, i), lab_src[i]);
        ck_assert_mem_eq(cnn_dataset_pixels(d, i), pix + i * H * W, H * W);
    }
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(cnn_dataset_class_count(d, k), counts[k]);
    ck_assert_ptr_nonnull(strstr(cnn_dataset_source(d), "train-images-idx3-ubyte"));
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

/* Normalisation: invert, mean and std of the preprocessing, computed here per pixel. */
START_TEST(test_idx_batch_applies_invert_mean_std)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    fill_pixels(5);
    write_pair(tmpdir, "train", 0);
    struct cnn_preproc pp = {.c = 1, .h = H, .w = W, .invert = 1, .mean = {0.25f}, .std = {0.5f}};
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_dataset_open(tmpdir, CNN_DATASET_IDX, "train", &pp, &d, &err), 0);
    int idx[3] = {4, 0, 6}, got_labels[3];
    float out[3 * H * W];
    cnn_dataset_batch(d, idx, 3, NULL, 0, out, got_labels);
    for (int j = 0; j < 3; j++) {
        ck_assert_int_eq(got_labels[j], lab_src[idx[j]]);
        for (int q = 0; q < H * W; q++) {
            double want = (1.0 - pix[idx[j] * H * W + q] / 255.0 - 0.25) / 0.5;
            ck_assert_double_eq_tol(out[j * H * W + q], want, 1e-5);
        }
    }
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

/* A 2-pixel-wide ramp stretched to 4 wide with half-pixel centers: 0, 50, 150, 200; gray to
 * RGB replicates into all three channels. */
START_TEST(test_idx_items_are_resized_to_the_model_input)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    uint8_t buf[64], p[2 * 2] = {0, 200, 0, 200}, l[2] = {0, 1};
    char path[256];
    uint32_t dims[3] = {1, 2, 2}, ld[1] = {1};
    snprintf(path, sizeof path, "%s/x-images-idx3-ubyte", tmpdir);
    write_bytes(path, buf, idx_bytes(buf, 8, 3, dims, p, 4), 0);
    char lpath[256];
    snprintf(lpath, sizeof lpath, "%s/x-labels-idx1-ubyte", tmpdir);
    write_bytes(lpath, buf, idx_bytes(buf, 8, 1, ld, l, 1), 0);
    struct cnn_preproc pp = {.c = 3, .h = 3, .w = 4, .std = {1, 1, 1}};
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    /* by images file: the labels file name is derived */
    ck_assert_int_eq(cnn_dataset_open(path, CNN_DATASET_AUTO, NULL, &pp, &d, &err), 0);
    static const uint8_t row[4] = {0, 50, 150, 200};
    const uint8_t *q = cnn_dataset_pixels(d, 0);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                ck_assert_int_eq(q[(c * 3 + y) * 4 + x], row[x]);
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

struct corrupt_case {
    const char *what;
    int gz;
    int code;
};

/* Builds the broken pair for case k in tmpdir; returns images and labels paths. */
static void write_corrupt(int k, char *img, char *lab, size_t n)
{
    static uint8_t buf[64 + sizeof pix + 8];
    uint32_t dims[4] = {N, H, W, 1}, ld[1] = {N};
    int gz = k >= 20;
    int kk = k % 20;
    snprintf(img, n, "%s/bad-images-idx3-ubyte%s", tmpdir, gz ? ".gz" : "");
    snprintf(lab, n, "%s/bad-labels-idx1-ubyte%s", tmpdir, gz ? ".gz" : "");
    size_t len = idx_bytes(buf, 8, 3, dims, pix, sizeof pix);
    size_t llen = 0;
    uint8_t lbuf[64];
    llen = idx_bytes(lbuf, 8, 1, ld, lab_src, N);
    switch (kk) {
    case 0:
        buf[1] = 1;
        break; /* magic */
    case 1:
        buf[2] = 0x0D;
        break; /* float data */
    case 2:
        buf[3] = 2;
        len -= 4;
        break; /* 2 dims */
    case 3:
        ld[0] = N - 1;
        llen = idx_bytes(lbuf, 8, 1, ld, lab_src, N - 1);
        break; /* counts */
    case 4:
        len -= 1;
        break; /* truncated payload */
    case 5:
        buf[len++] = 7;
        break; /* trailing byte */
    case 6:
        len = 3;
        break; /* truncated header */
    case 7:
        dims[1] = 0;
        len = idx_bytes(buf, 8, 3, dims, NULL, 0);
        break; /* 0 rows */
    case 8:
        dims[1] = 70000;
        len = idx_bytes(buf, 8, 3, dims, pix, sizeof pix);
        break;
    case 9:
        dims[0] = 0;
        ld[0] = 0;
        len = idx_bytes(buf, 8, 3, dims, NULL, 0);
        llen = idx_bytes(lbuf, 8, 1, ld, NULL, 0);
        break; /* no images */
    case 10:
        dims[3] = 2;
        len = idx_bytes(buf, 8, 4, dims, pix, sizeof pix);
        break;
    case 11:
        lbuf[3] = 3;
        break; /* labels with 3 dims */
    case 12:
        llen -= 2;
        break; /* labels truncated */
    case 13:
        dims[0] = 1u << 30;
        ld[0] = 1u << 30; /* over the item limit */
        len = idx_bytes(buf, 8, 3, dims, pix, sizeof pix);
        llen = idx_bytes(lbuf, 8, 1, ld, lab_src, N);
        break;
    default:
        break;
    }
    write_bytes(img, buf, len, gz);
    write_bytes(lab, lbuf, llen, gz);
}

static const struct corrupt_case corrupt[] = {
    {"magic", 0, CNN_EFORMAT},
    {"float type", 0, CNN_EFORMAT},
    {"two dims", 0, CNN_EFORMAT},
    {"count mismatch", 0, CNN_EFORMAT},
    {"truncated", 0, CNN_EFORMAT},
    {"trailing", 0, CNN_EFORMAT},
    {"short header", 0, CNN_EFORMAT},
    {"zero rows", 0, CNN_EFORMAT},
    {"70000 rows", 0, CNN_ELIMIT},
    {"no images", 0, CNN_EFORMAT},
    {"2 channels", 0, CNN_EFORMAT},
    {"labels 3 dims", 0, CNN_EFORMAT},
    {"labels truncated", 0, CNN_EFORMAT},
    {"2^30 items", 0, CNN_ELIMIT},
};
#define N_CORRUPT ((int)(sizeof corrupt / sizeof corrupt[0]))

START_TEST(test_idx_corrupt_headers_and_lengths_are_rejected)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    fill_pixels(3);
    int gz = _i >= N_CORRUPT;
    int k = _i % N_CORRUPT;
    char img[256], lab[256];
    write_corrupt(k + (gz ? 20 : 0), img, lab, sizeof img);
    struct cnn_dataset *d = (struct cnn_dataset *)1;
    struct cnn_err err = {0};
    int rc = cnn_dataset_load_idx(img, lab, &PLAIN, &d, &err);
    if (rc != corrupt[k].code)
        ck_abort_msg("%s (%s): rc %d, want %d (%s)", corrupt[k].what, gz ? "gzip" : "plain", rc,
                     corrupt[k].code, err.msg);
    ck_assert_ptr_null(d);
    ck_assert_int_eq(err.code, rc);
    ck_assert_msg(strstr(err.msg, "bad-") != NULL, "message names no file: %s", err.msg);
    rm_tree(tmpdir);
}
END_TEST

START_TEST(test_idx_garbage_gzip_and_missing_files)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    fill_pixels(3);
    char img[256], lab[256];
    write_corrupt(99, img, lab, sizeof img); /* valid gzip pair at "bad-..." */
    /* gzip magic followed by junk */
    uint8_t junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    for (int i = 10; i < 64; i++)
        junk[i] = (uint8_t)(i * 37);
    char gzp[256];
    snprintf(gzp, sizeof gzp, "%s/junk-images-idx3-ubyte.gz", tmpdir);
    write_bytes(gzp, junk, sizeof junk, 0);
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_dataset_load_idx(gzp, lab, &PLAIN, &d, &err), CNN_EFORMAT);
    ck_assert_ptr_null(d);
    char missing[256];
    snprintf(missing, sizeof missing, "%s/none-labels-idx1-ubyte", tmpdir);
    ck_assert_int_eq(cnn_dataset_load_idx(img, missing, &PLAIN, &d, &err), CNN_ENOENT);
    ck_assert_int_eq(cnn_dataset_open(tmpdir, CNN_DATASET_IDX, "t10k", &PLAIN, &d, &err),
                     CNN_ENOENT);
    /* auto: an IDX folder without the split is still IDX, and the error names the split */
    ck_assert_int_eq(cnn_dataset_open(tmpdir, CNN_DATASET_AUTO, "t10k", &PLAIN, &d, &err),
                     CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "t10k-images-idx3-ubyte"));
    snprintf(missing, sizeof missing, "%s/nothing", tmpdir);
    ck_assert_int_eq(cnn_dataset_open(missing, CNN_DATASET_AUTO, NULL, &PLAIN, &d, &err),
                     CNN_ENOENT);
    /* an images file whose name gives no labels file */
    snprintf(missing, sizeof missing, "%s/odd.bin", tmpdir);
    write_bytes(missing, junk, 8, 0);
    ck_assert_int_eq(cnn_dataset_open(missing, CNN_DATASET_AUTO, NULL, &PLAIN, &d, &err),
                     CNN_EINVAL);
    /* a preprocessing the dataset cannot store */
    struct cnn_preproc bad = PLAIN;
    bad.std[0] = 0;
    ck_assert_int_eq(cnn_dataset_load_idx(img, lab, &bad, &d, &err), CNN_EINVAL);
    ck_assert_ptr_null(d);
    rm_tree(tmpdir);
}
END_TEST

/* ---- folders ------------------------------------------------------------------------ */

static void write_png(const char *path, int w, int h, int rgb, const uint8_t *px)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = rgb ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    ck_assert_int_ne(png_image_write_to_file(&im, path, 0, px, 0, NULL), 0);
}

static void mkdir_in(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void png_in(const char *rel, int w, int h, int rgb, const uint8_t *px)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    write_png(p, w, h, rgb, px);
}

static void text_in(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    write_bytes(p, (const uint8_t *)text, strlen(text), 0);
}

/* Classes "cat", "ant", "bee" (labels by sorted name: ant 0, bee 1, cat 2); 3x2 gray images
 * at the model size, a 9x7 constant gray one, an RGB constant one; hidden and non-image
 * files are skipped. */
START_TEST(test_folder_labels_by_sorted_class_and_pixels)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    mkdir_in("cat");
    mkdir_in("ant");
    mkdir_in("bee");
    uint8_t a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {60, 50, 40, 30, 20, 10};
    uint8_t big[9 * 7], rgb[5 * 5 * 3];
    memset(big, 77, sizeof big);
    for (int i = 0; i < 25; i++) {
        rgb[3 * i] = 200;
        rgb[3 * i + 1] = 100;
        rgb[3 * i + 2] = 50;
    }
    png_in("ant/2.png", 3, 2, 0, b);
    png_in("ant/1.PNG", 3, 2, 0, a);
    png_in("bee/z.png", 9, 7, 0, big);
    png_in("cat/c.png", 5, 5, 1, rgb);
    png_in("cat/.hidden.png", 3, 2, 0, a);
    text_in("cat/README.txt", "not an image");
    text_in("notes.txt", "not a class");
    struct cnn_preproc pp = {.c = 1, .h = 2, .w = 3, .std = {1, 1, 1}};
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_dataset_open(tmpdir, CNN_DATASET_AUTO, NULL, &pp, &d, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(cnn_dataset_count(d), 4);
    ck_assert_int_eq(cnn_dataset_num_classes(d), 3);
    ck_assert_str_eq(cnn_dataset_class_name(d, 0), "ant");
    ck_assert_str_eq(cnn_dataset_class_name(d, 1), "bee");
    ck_assert_str_eq(cnn_dataset_class_name(d, 2), "cat");
    static const int want_label[4] = {0, 0, 1, 2};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(cnn_dataset_label(d, i), want_label[i]);
    ck_assert_int_eq(cnn_dataset_class_count(d, 0), 2);
    ck_assert_mem_eq(cnn_dataset_pixels(d, 0), a, 6); /* "1.PNG" sorts before "2.png" */
    ck_assert_mem_eq(cnn_dataset_pixels(d, 1), b, 6);
    for (int q = 0; q < 6; q++) {
        ck_assert_int_eq(cnn_dataset_pixels(d, 2)[q], 77);
        /* BT.601 luma of (200, 100, 50) = 124.2 */
        ck_assert_int_eq(cnn_dataset_pixels(d, 3)[q], 124);
    }
    ck_assert_ptr_nonnull(strstr(cnn_dataset_source(d), "folder:"));
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

START_TEST(test_folder_errors_name_the_problem)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    struct cnn_preproc pp = {.c = 1, .h = 2, .w = 3, .std = {1, 1, 1}};
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    /* no class folders */
    ck_assert_int_eq(cnn_dataset_load_folder(tmpdir, &pp, 1 << 20, &d, &err), CNN_EINVAL);
    /* a class without images */
    mkdir_in("one");
    mkdir_in("two");
    uint8_t a[6] = {0};
    png_in("one/a.png", 3, 2, 0, a);
    text_in("two/x.txt", "no");
    ck_assert_int_eq(cnn_dataset_load_folder(tmpdir, &pp, 1 << 20, &d, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "two"));
    /* a corrupt image names its file */
    text_in("two/broken.png", "this is not a png file at all");
    ck_assert_int_eq(cnn_dataset_load_folder(tmpdir, &pp, 1 << 20, &d, &err), CNN_EFORMAT);
    ck_assert_msg(strstr(err.msg, "two/broken.png") != NULL, "%s", err.msg);
    ck_assert_ptr_null(d);
    /* over max_pixels */
    uint8_t big[20 * 20] = {0};
    png_in("two/broken.png", 20, 20, 0, big);
    ck_assert_int_eq(cnn_dataset_load_folder(tmpdir, &pp, 100, &d, &err), CNN_ELIMIT);
    ck_assert_msg(strstr(err.msg, "broken.png") != NULL, "%s", err.msg);
    ck_assert_int_eq(cnn_dataset_load_folder(tmpdir, &pp, 1 << 20, &d, &err), 0);
    ck_assert_int_eq(cnn_dataset_count(d), 2);
    cnn_dataset_destroy(d);
    d = NULL;
    /* a folder dataset must be a folder */
    char f[256];
    snprintf(f, sizeof f, "%s/one/a.png", tmpdir);
    ck_assert_int_eq(cnn_dataset_open(f, CNN_DATASET_FOLDER, NULL, &pp, &d, &err), CNN_EINVAL);
    rm_tree(tmpdir);
}
END_TEST

/* ---- ordering ----------------------------------------------------------------------- */

START_TEST(test_shuffle_is_a_reproducible_permutation)
{
    enum { n = 1000 };
    static int p1[n], p2[n], p3[n], seen[n];
    cnn_dataset_shuffle(p1, NULL, n, 42);
    cnn_dataset_shuffle(p2, NULL, n, 42);
    cnn_dataset_shuffle(p3, NULL, n, 43);
    ck_assert_mem_eq(p1, p2, sizeof p1);
    ck_assert_int_ne(memcmp(p1, p3, sizeof p1), 0);
    memset(seen, 0, sizeof seen);
    int fixed = 0;
    for (int i = 0; i < n; i++) {
        ck_assert(p1[i] >= 0 && p1[i] < n);
        seen[p1[i]]++;
        fixed += p1[i] == i;
    }
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_lt(fixed, 10); /* a shuffle, not the identity (expected 1 fixed point) */
    /* over given indices: a permutation of them */
    int idx[5] = {9, 3, 7, 100, 4}, out[5];
    cnn_dataset_shuffle(out, idx, 5, 7);
    int sum = 0;
    for (int i = 0; i < 5; i++) {
        int hit = 0;
        for (int j = 0; j < 5; j++)
            hit += out[i] == idx[j];
        ck_assert_int_eq(hit, 1);
        sum += out[i];
    }
    ck_assert_int_eq(sum, 123);
}
END_TEST

/* All 24 orders of 4 items, over 4800 seeds: each near 200 times (chi-square, 23 dof; the
 * 99.99th percentile is about 55). */
START_TEST(test_shuffle_orders_are_uniform)
{
    int hist[256] = {0};
    for (uint64_t s = 0; s < 4800; s++) {
        int p[4];
        cnn_dataset_shuffle(p, NULL, 4, s);
        hist[p[0] * 64 + p[1] * 16 + p[2] * 4 + p[3]]++;
    }
    double chi = 0;
    int orders = 0;
    for (int k = 0; k < 256; k++)
        if (hist[k]) {
            orders++;
            chi += (hist[k] - 200.0) * (hist[k] - 200.0) / 200.0;
        }
    ck_assert_int_eq(orders, 24);
    ck_assert_double_lt(chi, 55.0);
}
END_TEST

/* Dataset with class counts 10, 7, 3 in a fixed interleaved order. */
static struct cnn_dataset *counts_dataset(void)
{
    enum { n = 20 };
    static uint8_t p[n], l[n], buf[64];
    int k = 0;
    for (int c = 0, left[3] = {10, 7, 3}; k < n; c = (c + 1) % 3)
        if (left[c]) {
            left[c]--;
            l[k] = (uint8_t)c;
            p[k] = (uint8_t)k;
            k++;
        }
    char img[256], lab[256];
    uint32_t dims[3] = {n, 1, 1}, ld[1] = {n};
    snprintf(img, sizeof img, "%s/s-images-idx3-ubyte.gz", tmpdir);
    snprintf(lab, sizeof lab, "%s/s-labels-idx1-ubyte.gz", tmpdir);
    write_bytes(img, buf, idx_bytes(buf, 8, 3, dims, p, n), 1);
    write_bytes(lab, buf, idx_bytes(buf, 8, 1, ld, l, n), 1);
    struct cnn_preproc pp = {.c = 1, .h = 1, .w = 1, .std = {1, 1, 1}};
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_dataset_load_idx(img, lab, &pp, &d, &err), 0);
    return d;
}

START_TEST(test_split_is_stratified_disjoint_and_seeded)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    struct cnn_dataset *d = counts_dataset();
    int tr[20], va[20], tr2[20], va2[20], nt, nv, nt2, nv2;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_dataset_split(d, 0.3, 5, tr, &nt, va, &nv, &err), 0);
    /* round(10*.3)=3, round(7*.3)=2, round(3*.3)=1 */
    ck_assert_int_eq(nv, 6);
    ck_assert_int_eq(nt, 14);
    int seen[20] = {0}, per[3] = {0};
    for (int i = 0; i < nv; i++) {
        seen[va[i]]++;
        per[cnn_dataset_label(d, va[i])]++;
        if (i)
            ck_assert_int_lt(va[i - 1], va[i]);
    }
    for (int i = 0; i < nt; i++) {
        seen[tr[i]]++;
        if (i)
            ck_assert_int_lt(tr[i - 1], tr[i]);
    }
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_eq(per[0], 3);
    ck_assert_int_eq(per[1], 2);
    ck_assert_int_eq(per[2], 1);
    ck_assert_int_eq(cnn_dataset_split(d, 0.3, 5, tr2, &nt2, va2, &nv2, &err), 0);
    ck_assert_mem_eq(va, va2, sizeof(int) * 6);
    int differs = 0;
    for (uint64_t s = 6; s < 12 && !differs; s++) {
        ck_assert_int_eq(cnn_dataset_split(d, 0.3, s, tr2, &nt2, va2, &nv2, &err), 0);
        differs = memcmp(va, va2, sizeof(int) * 6) != 0;
    }
    ck_assert(differs);
    ck_assert_int_eq(cnn_dataset_split(d, 0, 5, tr, &nt, va, &nv, &err), 0);
    ck_assert_int_eq(nt, 20);
    ck_assert_int_eq(nv, 0);
    ck_assert_int_eq(cnn_dataset_split(d, 1.0, 5, tr, &nt, va, &nv, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_dataset_split(d, -0.1, 5, tr, &nt, va, &nv, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_dataset_split(d, NAN, 5, tr, &nt, va, &nv, &err), CNN_EINVAL);
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

START_TEST(test_keep_classes_renumbers_and_compacts)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    struct cnn_dataset *d = counts_dataset();
    int orig_label[20], orig_pix[20];
    for (int i = 0; i < 20; i++) {
        orig_label[i] = cnn_dataset_label(d, i);
        orig_pix[i] = cnn_dataset_pixels(d, i)[0];
    }
    struct cnn_err err = {0};
    int bad[2] = {2, 2}, out[1] = {3};
    ck_assert_int_eq(cnn_dataset_keep_classes(d, bad, 2, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_dataset_keep_classes(d, out, 1, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_dataset_count(d), 20); /* unchanged by the refusals */
    int keep[2] = {2, 0};                       /* class 2 -> 0, class 0 -> 1 */
    ck_assert_int_eq(cnn_dataset_keep_classes(d, keep, 2, &err), 0);
    ck_assert_int_eq(cnn_dataset_count(d), 13);
    ck_assert_int_eq(cnn_dataset_num_classes(d), 2);
    ck_assert_int_eq(cnn_dataset_class_count(d, 0), 3);
    ck_assert_int_eq(cnn_dataset_class_count(d, 1), 10);
    int w = 0;
    for (int i = 0; i < 20; i++) {
        if (orig_label[i] == 1)
            continue;
        ck_assert_int_eq(cnn_dataset_pixels(d, w)[0], orig_pix[i]);
        ck_assert_int_eq(cnn_dataset_label(d, w), orig_label[i] == 2 ? 0 : 1);
        w++;
    }
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

/* ---- augmentation ------------------------------------------------------------------- */

/* Naive reference: item shifted by (dx, dy) and optionally mirrored, 0 outside. */
static void shifted(const uint8_t *src, int h, int w, int dx, int dy, int fl, uint8_t *out)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sx = (fl ? w - 1 - x : x) + dx, sy = y + dy;
            out[y * w + x] = sx >= 0 && sx < w && sy >= 0 && sy < h ? src[sy * w + sx] : 0;
        }
}

START_TEST(test_augment_is_a_seeded_shift_or_flip)
{
    make_tmpdir(tmpdir, sizeof tmpdir);
    fill_pixels(8);
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)(1 + pix[i] % 255); /* no zero pixel: padding is visible */
    write_pair(tmpdir, "train", 1);
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_dataset_open(tmpdir, CNN_DATASET_AUTO, "train", &PLAIN, &d, &err), 0);
    enum { B = 64 };
    int idx[B];
    for (int j = 0; j < B; j++)
        idx[j] = j % N;
    static float a[B * H * W], b[B * H * W], c[B * H * W];
    struct cnn_augment aug = {.crop_pad = 2, .hflip = 1};
    cnn_dataset_batch(d, idx, B, &aug, 99, a, NULL);
    cnn_dataset_batch(d, idx, B, &aug, 99, b, NULL);
    cnn_dataset_batch(d, idx, B, &aug, 100, c, NULL);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_int_ne(memcmp(a, c, sizeof a), 0);
    int flips = 0, shifts[5] = {0};
    for (int j = 0; j < B; j++) {
        int matched = 0;
        for (int fl = 0; fl < 2 && !matched; fl++)
            for (int dy = -2; dy <= 2 && !matched; dy++)
                for (int dx = -2; dx <= 2 && !matched; dx++) {
                    uint8_t ref[H * W];
                    shifted(pix + idx[j] * H * W, H, W, dx, dy, fl, ref);
                    int same = 1;
                    for (int q = 0; q < H * W && same; q++)
                        same = fabsf(a[j * H * W + q] - ref[q] / 255.0f) < 1e-6f;
                    if (same) {
                        matched = 1;
                        flips += fl;
                        shifts[dx + 2]++;
                    }
                }
        ck_assert_msg(matched, "item %d is no shift/flip of its source", j);
    }
    ck_assert(flips > 16 && flips < 48); /* about half of 64 */
    for (int s = 0; s < 5; s++)
        ck_assert_int_gt(shifts[s], 0); /* every shift in [-2, 2] occurs */
    /* no augmentation: exactly the stored pixels */
    struct cnn_augment none = {0};
    cnn_dataset_batch(d, idx, B, &none, 99, b, NULL);
    for (int j = 0; j < B; j++)
        for (int q = 0; q < H * W; q++)
            ck_assert_float_eq(b[j * H * W + q], pix[idx[j] * H * W + q] / 255.0f);
    cnn_dataset_destroy(d);
    rm_tree(tmpdir);
}
END_TEST

TCase *train_loop_tcase(void); /* check_train_loop.c */
TCase *fsroot_tcase(void);     /* check_fsroot.c */

Suite *dataset_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *idx = tcase_create("idx");
    tcase_add_loop_test(idx, test_idx_plain_and_gzip_load_exact_pixels_labels_and_counts, 0, 2);
    tcase_add_test(idx, test_idx_batch_applies_invert_mean_std);
    tcase_add_test(idx, test_idx_items_are_resized_to_the_model_input);
    tcase_add_loop_test(idx, test_idx_corrupt_headers_and_lengths_are_rejected, 0, 2 * N_CORRUPT);
    tcase_add_test(idx, test_idx_garbage_gzip_and_missing_files);
    suite_add_tcase(s, idx);
    TCase *folder = tcase_create("folder");
    tcase_add_test(folder, test_folder_labels_by_sorted_class_and_pixels);
    tcase_add_test(folder, test_folder_errors_name_the_problem);
    suite_add_tcase(s, folder);
    TCase *order = tcase_create("order");
    tcase_add_test(order, test_shuffle_is_a_reproducible_permutation);
    tcase_add_test(order, test_shuffle_orders_are_uniform);
    tcase_add_test(order, test_split_is_stratified_disjoint_and_seeded);
    tcase_add_test(order, test_keep_classes_renumbers_and_compacts);
    tcase_add_test(order, test_augment_is_a_seeded_shift_or_flip);
    suite_add_tcase(s, order);
    suite_add_tcase(s, train_loop_tcase());
    suite_add_tcase(s, fsroot_tcase());
    return s;
}
