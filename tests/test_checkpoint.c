/* Checkpoints: the safetensors layout byte by byte, round trips, and every
 * malformed file refused with a message that names the file and the fault. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/* ---- helpers ---- */

/* Names in dir (not . and ..), for "nothing left behind" checks. */
static int count_entries(const char *dir, char *first, size_t size)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n++ == 0 && first)
            snprintf(first, size, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (unlink(path) != 0)
                rmdir(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static uint64_t get_u64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_u64_le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes header text (padded with spaces to a multiple of 8) and data as a safetensors file. */
static void write_raw(const char *path, const char *header, const unsigned char *data, size_t data_len)
{
    size_t n = strlen(header), padded = (n + 7) / 8 * 8;
    unsigned char *bytes = malloc(8 + padded + data_len + 1);
    cr_assert_not_null(bytes);
    put_u64_le(bytes, padded);
    memcpy(bytes + 8, header, n);
    memset(bytes + 8 + n, ' ', padded - n);
    if (data_len)
        memcpy(bytes + 8 + padded, data, data_len);
    write_bytes(path, bytes, 8 + padded + data_len);
    free(bytes);
}

static void write_json(const char *path, const cJSON *header, const unsigned char *data, size_t data_len)
{
    char *text = cJSON_PrintUnformatted(header);
    cr_assert_not_null(text);
    write_raw(path, text, data, data_len);
    cJSON_free(text);
}

/* The header of a file as cJSON, and where its data section starts. */
static cJSON *parse_header(const unsigned char *bytes, size_t size, size_t *data_start)
{
    cr_assert_geq(size, 8);
    uint64_t n = get_u64_le(bytes);
    cr_assert_leq(8 + n, size);
    cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)n);
    cr_assert_not_null(root, "header is not JSON");
    *data_start = 8 + (size_t)n;
    return root;
}

static void expect_refused(const char *path, const char *needle)
{
    tg_clear_error();
    tg_model *m = tg_model_load(path);
    const char *error = tg_last_error();
    cr_assert_null(m, "a malformed file (expected '%s') was accepted", needle);
    cr_assert(strstr(error, path), "the error does not name the file: %s", error);
    cr_assert(strstr(error, needle), "expected '%s' in: %s", needle, error);
}

/* 3 inputs -> linear(2, bias): "0.weight" [2, 3] at [0, 24), "0.bias" [2] at [24, 32). */
static tg_model *tiny_model(void)
{
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 2, 1 } };
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_model *m = tg_model_new(TG_F32, 3, 1, layers, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    for (int i = 0; i < 2; i++)
        tg_set(tg_model_param(m, 1), i, 0.5 * (i + 1));
    return m;
}

/* A valid tiny checkpoint in dir: its header (caller deletes) and data bytes. */
static cJSON *tiny_checkpoint(const char *dir, unsigned char **data, size_t *data_len)
{
    char *path = join_path(dir, "valid.safetensors");
    tg_model *m = tiny_model();
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    tg_model_free(m);
    size_t size, start;
    unsigned char *bytes = read_bytes(path, &size);
    cJSON *root = parse_header(bytes, size, &start);
    *data_len = size - start;
    *data = malloc(*data_len + 1);
    memcpy(*data, bytes + start, *data_len);
    free(bytes);
    unlink(path);
    free(path);
    return root;
}

static cJSON *tensor_entry(cJSON *root, const char *name)
{
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, name);
    cr_assert_not_null(e, "no entry %s", name);
    return e;
}

static void set_offsets(cJSON *root, const char *name, double begin, double end)
{
    cJSON *e = tensor_entry(root, name);
    cJSON_ReplaceItemInObjectCaseSensitive(e, "data_offsets", cJSON_CreateDoubleArray((double[]){ begin, end }, 2));
}

static void set_meta(cJSON *root, const char *key, const char *value)
{
    cJSON *meta = tensor_entry(root, "__metadata__");
    cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
    if (value)
        cJSON_AddStringToObject(meta, key, value);
}

/* ---- round trips ---- */

Test(checkpoint, round_trip_keeps_weights_labels_standardization_and_config)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "model.safetensors");
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 5, 1 },
                               { TG_LAYER_RELU, 0, 0 },
                               { TG_LAYER_LINEAR, 4, 0 },
                               { TG_LAYER_TANH, 0, 0 },
                               { TG_LAYER_LINEAR, 3, 1 } };
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    tg_model *m = tg_model_new(TG_F32, 4, 5, layers, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    tg_set(tg_model_param(m, 1), 0, -0.0); /* the sign of zero survives too */
    tg_set(tg_model_param(m, 1), 1, 1e-40); /* a subnormal float */
    char *labels[] = { "setosa", "versi,color \"quoted\"", "virgínica\n" };
    cr_assert_eq(tg_model_set_labels(m, 3, labels), 0, "%s", tg_last_error());
    /* values whose shortest decimal needs all 9 digits */
    const float mean[4] = { 0.1f, -3.33333325f, 16777217.0f, 1.17549435e-38f };
    const float std[4] = { 1.0f, 0.3f, 2.5e-7f, 3.40282347e+38f };
    cr_assert_eq(tg_model_set_standardization(m, mean, std), 0);
    const char *config = "{\"seed\": 7, \"model\": {\"layers\": [\"ü\"]}}\n";
    cr_assert_eq(tg_model_set_config_json(m, config), 0);

    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    tg_model *back = tg_model_load(path);
    cr_assert_not_null(back, "%s", tg_last_error());

    cr_assert_eq(tg_model_dtype(back), TG_F32);
    cr_assert_eq(tg_model_inputs(back), 4);
    cr_assert_eq(tg_model_classes(back), 3);
    cr_assert_eq(tg_model_n_layers(back), 5);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(tg_model_layer(back, i)->type, layers[i].type);
        if (layers[i].type == TG_LAYER_LINEAR) {
            cr_assert_eq(tg_model_layer(back, i)->out, layers[i].out);
            cr_assert_eq(tg_model_layer(back, i)->bias, layers[i].bias);
        }
    }
    cr_assert_eq(tg_model_n_params(back), 5); /* 0.weight 0.bias 2.weight 4.weight 4.bias */
    for (int i = 0; i < tg_model_n_params(m); i++) {
        tg_tensor *a = tg_model_param(m, i), *b = tg_model_param(back, i);
        cr_assert_str_eq(tg_model_param_name(back, i), tg_model_param_name(m, i));
        cr_assert_eq(tg_ndim(b), tg_ndim(a));
        cr_assert_eq(memcmp(tg_shape(b), tg_shape(a), (size_t)tg_ndim(a) * sizeof(int64_t)), 0);
        cr_assert_eq(memcmp(tg_data(b), tg_data(a), (size_t)tg_numel(a) * sizeof(float)), 0, "%s is not bit-identical",
                     tg_model_param_name(m, i));
        cr_assert(tg_requires_grad(b), "a loaded model trains like a new one");
    }
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(tg_model_label(back, i), labels[i]);
    cr_assert_eq(memcmp(tg_model_mean(back), mean, sizeof mean), 0);
    cr_assert_eq(memcmp(tg_model_std(back), std, sizeof std), 0);
    cr_assert_str_eq(tg_model_config_json(back), config);

    tg_model_free(m);
    tg_model_free(back);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, float64_model_without_extras_round_trips)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "m64.safetensors");
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 3, 0 }, { TG_LAYER_SIGMOID, 0, 0 }, { TG_LAYER_LINEAR, 2, 1 } };
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_model *m = tg_model_new(TG_F64, 2, 3, layers, &rng);
    cr_assert_not_null(m);
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    tg_model *back = tg_model_load(path);
    cr_assert_not_null(back, "%s", tg_last_error());
    cr_assert_eq(tg_model_dtype(back), TG_F64);
    cr_assert_eq(tg_model_n_params(back), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(memcmp(tg_data(tg_model_param(back, i)), tg_data(tg_model_param(m, i)),
                            (size_t)tg_numel(tg_model_param(m, i)) * sizeof(double)),
                     0);
    cr_assert_null(tg_model_label(back, 0));
    cr_assert_null(tg_model_mean(back));
    cr_assert_null(tg_model_std(back));
    cr_assert_null(tg_model_config_json(back));
    tg_model_free(m);
    tg_model_free(back);
    free(path);
    remove_dir(dir);
}

/* ---- the bytes on disk ---- */

Test(checkpoint, bytes_follow_the_safetensors_layout)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "layout.safetensors");
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 3, 1 }, { TG_LAYER_RELU, 0, 0 }, { TG_LAYER_LINEAR, 2, 1 } };
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_model *m = tg_model_new(TG_F32, 4, 3, layers, &rng);
    cr_assert_not_null(m);
    char *names[] = { "no", "yes" };
    cr_assert_eq(tg_model_set_labels(m, 2, names), 0);
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());

    size_t size, start;
    unsigned char *bytes = read_bytes(path, &size);
    uint64_t n = get_u64_le(bytes);
    cr_assert_eq(n % 8, 0, "header length %llu is not a multiple of 8", (unsigned long long)n);
    cr_assert_eq(bytes[8], '{');
    cJSON *root = parse_header(bytes, size, &start);
    /* the padding is spaces after the closing brace */
    size_t last = start - 1;
    while (bytes[last] == ' ')
        last--;
    cr_assert_eq(bytes[last], '}');
    cr_assert_lt(start - 1 - last, 8);

    /* __metadata__ first, str -> str only */
    cJSON *meta = root->child;
    cr_assert_str_eq(meta->string, "__metadata__");
    for (cJSON *item = meta->child; item; item = item->next)
        cr_assert(cJSON_IsString(item), "metadata '%s' is not a string", item->string);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "format")->valuestring, "pt");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "inputs")->valuestring, "4");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "classes")->valuestring, "2");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "dtype")->valuestring, "float32");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "layers")->valuestring,
                     "[{\"type\":\"linear\",\"out\":3,\"bias\":true},{\"type\":\"relu\"},"
                     "{\"type\":\"linear\",\"out\":2,\"bias\":true}]");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "labels")->valuestring, "[\"no\",\"yes\"]");
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(meta, "standardize_mean"));

    /* then the tensors in state_dict order, contiguous from 0 */
    const char *expect_name[] = { "0.weight", "0.bias", "2.weight", "2.bias" };
    const int64_t expect_shape[][2] = { { 3, 4 }, { 3, 0 }, { 2, 3 }, { 2, 0 } };
    const int expect_ndim[] = { 2, 1, 2, 1 };
    double offset = 0;
    int k = 0;
    for (cJSON *e = meta->next; e; e = e->next, k++) {
        cr_assert_lt(k, 4);
        cr_assert_str_eq(e->string, expect_name[k]);
        cr_assert_eq(cJSON_GetArraySize(e), 3, "%s has keys other than dtype, shape, data_offsets", e->string);
        cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring, "F32");
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cr_assert_eq(cJSON_GetArraySize(shape), expect_ndim[k]);
        double numel = 1;
        for (int d = 0; d < expect_ndim[k]; d++) {
            cr_assert_eq(cJSON_GetArrayItem(shape, d)->valuedouble, (double)expect_shape[k][d]);
            numel *= (double)expect_shape[k][d];
        }
        cJSON *offsets = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        cr_assert_eq(cJSON_GetArraySize(offsets), 2);
        cr_assert_eq(cJSON_GetArrayItem(offsets, 0)->valuedouble, offset);
        cr_assert_eq(cJSON_GetArrayItem(offsets, 1)->valuedouble, offset + 4 * numel);
        /* the raw bytes are the parameter's floats, little-endian */
        const tg_tensor *p = tg_model_param(m, k);
        for (int64_t i = 0; i < tg_numel(p); i++) {
            const unsigned char *b = bytes + start + (size_t)offset + 4 * (size_t)i;
            uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            float v;
            memcpy(&v, &bits, 4);
            cr_assert_eq(v, ((const float *)tg_data(p))[i]);
        }
        offset += 4 * numel;
    }
    cr_assert_eq(k, 4);
    cr_assert_eq((double)size, 8 + (double)n + offset, "file size is not 8 + header + data");

    cJSON_Delete(root);
    free(bytes);
    tg_model_free(m);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, standardization_is_printed_with_nine_digits)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "std.safetensors");
    tg_model *m = tiny_model();
    cr_assert_eq(tg_model_set_standardization(m, (float[]){ 0.1f, -2.0f, 2.5e-7f }, (float[]){ 1.0f, 0.3f, 1e-30f }),
                 0);
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    size_t size, start;
    unsigned char *bytes = read_bytes(path, &size);
    cJSON *root = parse_header(bytes, size, &start);
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    /* the floats nearest 0.1, 2.5e-7, 0.3 and 1e-30 are 0.10000000149..., 2.4999999937e-07,
     * 0.30000001192... and 1.00000000317e-30; 9 significant digits of each: */
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "standardize_mean")->valuestring,
                     "[0.100000001,-2,2.49999999e-07]");
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "standardize_std")->valuestring, "[1,0.300000012,1e-30]");
    cJSON_Delete(root);
    free(bytes);
    tg_model_free(m);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, loads_tensors_in_any_order_like_other_writers)
{
    /* Python's safetensors sorts names: 0.bias before 0.weight, in data order too. */
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "sorted.safetensors");
    unsigned char *data;
    size_t data_len;
    cJSON *root = tiny_checkpoint(dir, &data, &data_len);
    unsigned char swapped[32];
    memcpy(swapped, data + 24, 8);
    memcpy(swapped + 8, data, 24);
    cJSON *weight = cJSON_DetachItemFromObjectCaseSensitive(root, "0.weight");
    cJSON_AddItemToObject(root, "0.weight", weight);
    set_offsets(root, "0.bias", 0, 8);
    set_offsets(root, "0.weight", 8, 32);
    write_json(path, root, swapped, sizeof swapped);
    tg_model *m = tg_model_load(path);
    cr_assert_not_null(m, "%s", tg_last_error());
    cr_assert_eq(tg_get(tg_model_param(m, 1), 0), 0.5);
    cr_assert_eq(tg_get(tg_model_param(m, 1), 1), 1.0);
    cr_assert_eq(memcmp(tg_data(tg_model_param(m, 0)), data, 24), 0);
    tg_model_free(m);
    cJSON_Delete(root);
    free(data);
    free(path);
    remove_dir(dir);
}

/* ---- malformed files ---- */

Test(checkpoint, truncated_files_are_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *good = join_path(dir, "good.safetensors"),
         *path = join_path(dir, "cut.safetensors");
    tg_model *m = tiny_model();
    cr_assert_eq(tg_model_save(m, good), 0, "%s", tg_last_error());
    size_t size;
    unsigned char *bytes = read_bytes(good, &size);
    size_t n = (size_t)get_u64_le(bytes);
    struct {
        size_t keep;
        const char *needle;
    } cuts[] = {
        { 0, "too short" },
        { 5, "too short" },
        { 8, "only 0 bytes follow" },
        { 8 + n / 2, "truncated" },
        { 8 + n, "data_offsets end at byte 32 but the file has 0 bytes" },
        { 8 + n + 13, "data_offsets end at byte 32 but the file has 13 bytes" },
        { size - 1, "but the file has 31 bytes" },
    };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(path, bytes, cuts[i].keep);
        expect_refused(path, cuts[i].needle);
    }
    /* one byte too many is refused as well */
    unsigned char *longer = malloc(size + 1);
    memcpy(longer, bytes, size);
    longer[size] = 0;
    write_bytes(path, longer, size + 1);
    expect_refused(path, "file has 33 bytes of data");
    free(longer);
    free(bytes);
    tg_model_free(m);
    free(good);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, header_length_too_large_is_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "big.safetensors");
    unsigned char bytes[64];
    memset(bytes, ' ', sizeof bytes);
    bytes[8] = '{';
    bytes[9] = '}';
    put_u64_le(bytes, 100000000);
    write_bytes(path, bytes, sizeof bytes);
    expect_refused(path, "header length 100000000, expected less than 100000000");
    put_u64_le(bytes, UINT64_MAX);
    write_bytes(path, bytes, sizeof bytes);
    expect_refused(path, "header length 18446744073709551615");
    put_u64_le(bytes, 57); /* one more than follows */
    write_bytes(path, bytes, sizeof bytes);
    expect_refused(path, "header length 57 but only 56 bytes follow");
    free(path);
    remove_dir(dir);
}

Test(checkpoint, bad_json_is_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "json.safetensors");
    write_raw(path, "{\"0.weight\": {\"dtype\": ", NULL, 0);
    expect_refused(path, "not valid JSON");
    write_raw(path, "[1, 2]", NULL, 0);
    expect_refused(path, "must start with '{'");
    write_raw(path, "{} {}", NULL, 0);
    expect_refused(path, "unexpected text after the header");
    write_raw(path, "{\"a\": 1}", NULL, 0);
    expect_refused(path, "tensor 'a' is a number, expected an object");
    free(path);
    remove_dir(dir);
}

Test(checkpoint, wrong_dtype_strings_are_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "dtype.safetensors");
    unsigned char *data;
    size_t data_len;
    const char *wrong[] = { "F16", "float32", "f32", "BF16", "I64" };
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        cJSON *root = tiny_checkpoint(dir, &data, &data_len);
        cJSON_ReplaceItemInObjectCaseSensitive(tensor_entry(root, "0.bias"), "dtype", cJSON_CreateString(wrong[i]));
        write_json(path, root, data, data_len);
        char needle[64];
        snprintf(needle, sizeof needle, "tensor '0.bias' has dtype '%s', expected F32 or F64", wrong[i]);
        expect_refused(path, needle);
        cJSON_Delete(root);
        free(data);
    }
    /* F64 tensors with float32 metadata: the sizes fit, the dtypes do not */
    cJSON *root = tiny_checkpoint(dir, &data, &data_len);
    unsigned char twice[64] = { 0 };
    cJSON_ReplaceItemInObjectCaseSensitive(tensor_entry(root, "0.weight"), "dtype", cJSON_CreateString("F64"));
    cJSON_ReplaceItemInObjectCaseSensitive(tensor_entry(root, "0.bias"), "dtype", cJSON_CreateString("F64"));
    set_offsets(root, "0.weight", 0, 48);
    set_offsets(root, "0.bias", 48, 64);
    write_json(path, root, twice, sizeof twice);
    expect_refused(path, "'dtype' is float32 but the tensors are F64");
    /* mixed dtypes */
    cJSON_ReplaceItemInObjectCaseSensitive(tensor_entry(root, "0.bias"), "dtype", cJSON_CreateString("F32"));
    set_offsets(root, "0.bias", 48, 56);
    write_json(path, root, twice, 56);
    expect_refused(path, "expected one dtype");
    cJSON_Delete(root);
    free(data);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, holes_and_overlaps_are_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "offsets.safetensors");
    unsigned char *data;
    size_t data_len;
    unsigned char padded[64] = { 0 };

    cJSON *root = tiny_checkpoint(dir, &data, &data_len);
    set_offsets(root, "0.bias", 28, 36); /* 4 unused bytes between the tensors */
    write_json(path, root, padded, 36);
    expect_refused(path, "tensor '0.bias' data_offsets begin at 28 but tensor '0.weight' ends at 24 (a hole)");

    set_offsets(root, "0.bias", 20, 28); /* shares 4 bytes with 0.weight */
    write_json(path, root, padded, 28);
    expect_refused(path, "begin at 20 but tensor '0.weight' ends at 24 (an overlap)");

    set_offsets(root, "0.bias", 24, 32);
    set_offsets(root, "0.weight", 4, 28); /* nothing at 0 */
    write_json(path, root, padded, 32);
    expect_refused(path, "expected the first tensor at 0");

    set_offsets(root, "0.weight", 0, 24);
    set_offsets(root, "0.bias", 32, 24);
    write_json(path, root, padded, 32);
    expect_refused(path, "end before they begin");

    set_offsets(root, "0.bias", -8, 0);
    write_json(path, root, padded, 32);
    expect_refused(path, "two non-negative integers");

    set_offsets(root, "0.bias", 24, 32.5);
    write_json(path, root, padded, 32);
    expect_refused(path, "two non-negative integers");
    cJSON_Delete(root);
    free(data);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, shape_and_size_mismatches_are_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "shape.safetensors");
    unsigned char *data;
    size_t data_len;
    cJSON *root = tiny_checkpoint(dir, &data, &data_len);
    cJSON *entry = tensor_entry(root, "0.weight");

    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape", cJSON_CreateIntArray((int[]){ 2, 4 }, 2));
    write_json(path, root, data, data_len);
    expect_refused(path, "tensor '0.weight' data_offsets [0, 24] but shape [2, 4] float32 needs 32 bytes");

    /* the right size in the wrong shape: the layers decide */
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape", cJSON_CreateIntArray((int[]){ 3, 2 }, 2));
    write_json(path, root, data, data_len);
    expect_refused(path, "tensor '0.weight' has shape [3, 2] but the layers in __metadata__ need [2, 3]");

    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape", cJSON_CreateIntArray((int[]){ 6 }, 1));
    write_json(path, root, data, data_len);
    expect_refused(path, "has shape [6] but the layers in __metadata__ need [2, 3]");

    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape", cJSON_CreateDoubleArray((double[]){ 2, 1.5, 2 }, 3));
    write_json(path, root, data, data_len);
    expect_refused(path, "shape entry 1 is not a non-negative integer");

    /* a product that overflows int64 cannot pass as a small size */
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape",
                                           cJSON_CreateDoubleArray((double[]){ 4294967296.0, 4294967296.0, 4.0 }, 3));
    write_json(path, root, data, data_len);
    expect_refused(path, "needs more than");

    /* the layers ask for more than the file holds (before anything is allocated) */
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape", cJSON_CreateIntArray((int[]){ 2, 3 }, 2));
    set_meta(root, "layers", "[{\"type\":\"linear\",\"out\":1000000000000,\"bias\":true}]");
    write_json(path, root, data, data_len);
    expect_refused(path, "need 16000000000000 bytes of parameters but the file holds 32");
    cJSON_Delete(root);
    free(data);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, wrong_missing_extra_and_duplicate_names_are_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "names.safetensors");
    unsigned char *data;
    size_t data_len;
    cJSON *root = tiny_checkpoint(dir, &data, &data_len);

    cJSON *bias = cJSON_DetachItemFromObjectCaseSensitive(root, "0.bias");
    cJSON_AddItemToObject(root, "1.bias", bias);
    write_json(path, root, data, data_len);
    expect_refused(path, "tensor '0.bias' is missing");

    /* a duplicate key, even with consistent offsets elsewhere */
    cJSON_AddItemToObject(root, "1.bias", cJSON_Duplicate(bias, 1));
    write_json(path, root, data, data_len);
    expect_refused(path, "tensor '1.bias' appears more than once");
    cJSON_Delete(root);
    free(data);

    /* an extra (empty) tensor the model does not have */
    root = tiny_checkpoint(dir, &data, &data_len);
    cJSON *extra = cJSON_AddObjectToObject(root, "extra");
    cJSON_AddStringToObject(extra, "dtype", "F32");
    cJSON_AddItemToObject(extra, "shape", cJSON_CreateIntArray((int[]){ 0 }, 1));
    cJSON_AddItemToObject(extra, "data_offsets", cJSON_CreateIntArray((int[]){ 32, 32 }, 2));
    write_json(path, root, data, data_len);
    expect_refused(path, "tensor 'extra' is not a parameter");

    cJSON_AddItemToObject(root, "__metadata__", cJSON_CreateObject());
    write_json(path, root, data, data_len);
    expect_refused(path, "'__metadata__' appears 2 times");
    cJSON_Delete(root);
    free(data);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, missing_or_wrong_metadata_is_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "meta.safetensors");
    unsigned char *data;
    size_t data_len;
    struct {
        const char *key, *value, *needle;
    } cases[] = {
        { "layers", NULL, "__metadata__ has no 'layers'" },
        { "inputs", NULL, "__metadata__ has no 'inputs'" },
        { "dtype", NULL, "__metadata__ has no 'dtype'" },
        { "inputs", "3.0", "'inputs' is '3.0', expected a positive integer" },
        { "inputs", "4", "the layers in __metadata__ need 40 bytes of parameters but the file holds 32" },
        { "dtype", "int64", "'dtype' is 'int64', expected float32 or float64" },
        { "layers", "[{\"type\":\"gelu\"}]", "entry 0 has type 'gelu'" },
        { "layers", "[{\"type\":\"linear\",\"out\":2}]", "'bias' must be true or false" },
        { "layers", "[{\"type\":\"linear\",\"out\":0,\"bias\":true}]", "'out' must be a positive integer" },
        { "layers", "[{\"type\":\"linear\",\"out\":2,\"bias\":true},{\"type\":\"relu\"}]",
          "the last layer is relu, expected linear" },
        { "layers", "[{\"type\":\"linear\"", "'layers' is not valid JSON" },
        { "layers", "[]", "'layers' has 0 entries" },
        { "classes", "3", "'classes' is '3' but the layers give 2" },
        { "labels", "[\"a\"]", "'labels' has 1 names for 2 classes" },
        { "labels", "[\"a\", 2]", "'labels' entry 1 is a number, expected a string" },
        { "standardize_mean", "[0, 0, 0]", "has 'standardize_mean' without 'standardize_std'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *root = tiny_checkpoint(dir, &data, &data_len);
        set_meta(root, cases[i].key, cases[i].value);
        write_json(path, root, data, data_len);
        expect_refused(path, cases[i].needle);
        cJSON_Delete(root);
        free(data);
    }

    cJSON *root = tiny_checkpoint(dir, &data, &data_len);
    set_meta(root, "standardize_mean", "[0, 0]");
    set_meta(root, "standardize_std", "[1, 1, 1]");
    write_json(path, root, data, data_len);
    expect_refused(path, "'standardize_mean' has 2 values for 3 inputs");
    set_meta(root, "standardize_mean", "[0, 1e39, 0]");
    write_json(path, root, data, data_len);
    expect_refused(path, "'standardize_mean' entry 1 is not a finite float32 number");

    cJSON_AddNumberToObject(tensor_entry(root, "__metadata__"), "epochs", 3);
    write_json(path, root, data, data_len);
    expect_refused(path, "'epochs' is a number, expected a string");

    cJSON_DeleteItemFromObjectCaseSensitive(root, "__metadata__");
    write_json(path, root, data, data_len);
    expect_refused(path, "no __metadata__");
    cJSON_Delete(root);
    free(data);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, unreadable_paths_are_refused)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *missing = join_path(dir, "missing.safetensors");
    expect_refused(missing, "cannot open: No such file or directory");
    expect_refused(dir, "is a directory");
    tg_clear_error();
    cr_assert_null(tg_model_load(NULL));
    cr_assert_neq(tg_last_error()[0], '\0');
    free(missing);
    remove_dir(dir);
}

/* ---- writing safely ---- */

Test(checkpoint, saving_leaves_no_temporary_file_and_replaces_the_old_one)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "model.safetensors");
    tg_model *a = tiny_model();
    cr_assert_eq(tg_model_save(a, path), 0, "%s", tg_last_error());
    char name[256];
    cr_assert_eq(count_entries(dir, name, sizeof name), 1);
    cr_assert_str_eq(name, "model.safetensors");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "a new checkpoint is 0644, not mkstemp's 0600");

    /* saving over it: the new weights replace the old, the old mode is kept */
    cr_assert_eq(chmod(path, 0640), 0);
    tg_set(tg_model_param(a, 1), 0, 42.0);
    cr_assert_eq(tg_model_save(a, path), 0, "%s", tg_last_error());
    cr_assert_eq(count_entries(dir, name, sizeof name), 1);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    tg_model *back = tg_model_load(path);
    cr_assert_not_null(back, "%s", tg_last_error());
    cr_assert_eq(tg_get(tg_model_param(back, 1), 0), 42.0);
    tg_model_free(back);
    tg_model_free(a);
    free(path);
    remove_dir(dir);
}

Test(checkpoint, failed_saves_leave_the_old_file_and_nothing_else)
{
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "model.safetensors");
    tg_model *m = tiny_model();
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    size_t before_size, after_size;
    unsigned char *before = read_bytes(path, &before_size);

    /* a failure before the file is touched: NaN has no JSON spelling. tg_model_set_standardization
     * refuses NaN, so it is written into the model's own array, as a bug in a caller could. */
    cr_assert_neq(tg_model_set_standardization(m, (float[]){ 0, NAN, 0 }, (float[]){ 1, 1, 1 }), 0);
    cr_assert_eq(tg_model_set_standardization(m, (float[]){ 0, 0, 0 }, (float[]){ 1, 1, 1 }), 0);
    ((float *)tg_model_mean(m))[1] = NAN;
    tg_set(tg_model_param(m, 0), 0, 99.0);
    cr_assert_neq(tg_model_save(m, path), 0);
    cr_assert(strstr(tg_last_error(), "standardization mean[1] is nan"), "%s", tg_last_error());
    unsigned char *after = read_bytes(path, &after_size);
    cr_assert_eq(after_size, before_size);
    cr_assert_eq(memcmp(before, after, before_size), 0, "the old file was changed");
    cr_assert_eq(count_entries(dir, NULL, 0), 1);
    free(after);
    cr_assert_eq(tg_model_set_standardization(m, NULL, NULL), 0);

    /* a path in a folder that does not exist */
    char *nowhere = join_path(dir, "no/such/folder/model.safetensors");
    tg_clear_error();
    cr_assert_neq(tg_model_save(m, nowhere), 0);
    cr_assert(strstr(tg_last_error(), nowhere), "%s", tg_last_error());
    cr_assert(strstr(tg_last_error(), "No such file or directory"), "%s", tg_last_error());
    cr_assert_eq(count_entries(dir, NULL, 0), 1);

    /* a folder is refused before anything is written (it used to fail at the rename) */
    char *folder = join_path(dir, "folder"), *inside = join_path(folder, "keep");
    cr_assert_eq(mkdir(folder, 0755), 0);
    write_bytes(inside, "x", 1);
    tg_clear_error();
    cr_assert_neq(tg_model_save(m, folder), 0);
    cr_assert(strstr(tg_last_error(), "is a folder"), "%s", tg_last_error());
    cr_assert_eq(count_entries(dir, NULL, 0), 2, "a temporary file was left behind");
    cr_assert_eq(count_entries(folder, NULL, 0), 1);
    unlink(inside);

    free(inside);
    free(folder);
    free(nowhere);
    free(before);
    tg_model_free(m);
    free(path);
    remove_dir(dir);
}

/* ---- every allocation checked ---- */

static long allocations_left = -1; /* fail every allocation once this reaches 0; -1: never */
static long live_blocks;
static void *counting_malloc(size_t n)
{
    if (allocations_left == 0)
        return NULL;
    if (allocations_left > 0)
        allocations_left--;
    void *p = malloc(n);
    live_blocks += p != NULL;
    return p;
}
static void *counting_realloc(void *p, size_t n)
{
    if (allocations_left == 0)
        return NULL;
    if (allocations_left > 0)
        allocations_left--;
    void *q = realloc(p, n);
    live_blocks += !p && q;
    return q;
}
static void counting_free(void *p)
{
    live_blocks -= p != NULL;
    free(p);
}

Test(checkpoint, allocation_failures_fail_cleanly_at_every_step)
{
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    char *dir = make_temp_dir("tapegrad-checkpoint"), *path = join_path(dir, "model.safetensors");
    tg_model *m = tiny_model();
    char *labels[] = { "a", "b" };
    cr_assert_eq(tg_model_set_labels(m, 2, labels), 0);
    cr_assert_eq(tg_model_set_standardization(m, (float[]){ 1, 2, 3 }, (float[]){ 4, 5, 6 }), 0);
    cr_assert_eq(tg_model_set_config_json(m, "{}"), 0);
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    size_t good_size, size;
    unsigned char *good = read_bytes(path, &good_size);

    int saved = 0, loaded = 0;
    for (long k = 0; k < 1000 && !(saved && loaded); k++) {
        long before = live_blocks;
        allocations_left = k;
        int rc = tg_model_save(m, path);
        allocations_left = -1;
        cr_assert_eq(live_blocks, before, "save leaked with allocation %ld failing", k);
        cr_assert(rc == 0 || strstr(tg_last_error(), "out of memory"), "%s", tg_last_error());
        saved |= rc == 0;
        cr_assert_eq(count_entries(dir, NULL, 0), 1, "a temporary file was left behind");
        unsigned char *now = read_bytes(path, &size);
        cr_assert(size == good_size && memcmp(now, good, size) == 0, "the file changed");
        free(now);

        allocations_left = k;
        tg_model *back = tg_model_load(path);
        allocations_left = -1;
        cr_assert(back || strstr(tg_last_error(), "out of memory"), "%s", tg_last_error());
        loaded |= back != NULL;
        tg_model_free(back);
        cr_assert_eq(live_blocks, before, "load leaked with allocation %ld failing", k);
    }
    cr_assert(saved && loaded);
    free(good);
    tg_model_free(m);
    free(path);
    remove_dir(dir);
    tg_set_allocator(NULL, NULL, NULL); /* the counting hooks wrap malloc, so the swap is safe */
}

/* tg_model_save writes only to a regular file or a new path: the rename would otherwise replace a device
 * node (as root), a FIFO or a socket. A symbolic link is followed: its target gets the bytes, the link
 * stays. */
Test(checkpoint, saves_refuse_devices_and_fifos_and_follow_symbolic_links)
{
    char *dir = make_temp_dir("tapegrad-checkpoint");
    tg_model *m = tiny_model();
    tg_clear_error();
    cr_assert_neq(tg_model_save(m, "/dev/null"), 0);
    cr_assert(strstr(tg_last_error(), "/dev/null: is a character device"), "%s", tg_last_error());
    struct stat st;
    cr_assert(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "/dev/null was replaced");

    char *fifo = join_path(dir, "fifo");
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    cr_assert_neq(tg_model_save(m, fifo), 0);
    cr_assert(strstr(tg_last_error(), "is a FIFO"), "%s", tg_last_error());
    cr_assert(stat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));

    char *target = join_path(dir, "target.safetensors"), *link = join_path(dir, "link.safetensors");
    write_bytes(target, "old", 3);
    cr_assert_eq(symlink("target.safetensors", link), 0);
    cr_assert_eq(tg_model_save(m, link), 0, "%s", tg_last_error());
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced by a file");
    tg_model *back = tg_model_load(target);
    cr_assert_not_null(back, "the target does not hold the model: %s", tg_last_error());
    tg_model_free(back);

    char *dangling = join_path(dir, "dangling"), *to_fifo = join_path(dir, "to_fifo");
    cr_assert_eq(symlink("nowhere/nothing", dangling), 0);
    cr_assert_neq(tg_model_save(m, dangling), 0);
    cr_assert(strstr(tg_last_error(), "symbolic link whose target cannot be reached"), "%s", tg_last_error());
    cr_assert_eq(symlink("fifo", to_fifo), 0);
    cr_assert_neq(tg_model_save(m, to_fifo), 0);
    cr_assert(strstr(tg_last_error(), "is a symbolic link to") && strstr(tg_last_error(), "a FIFO"), "%s",
              tg_last_error());
    cr_assert_eq(count_entries(dir, NULL, 0), 5, "a temporary file was left behind");
    /* the same check, alone (what tapegrad train runs before training) */
    cr_assert_eq(tg_check_save_path(link), 0, "%s", tg_last_error());
    char *fresh = join_path(dir, "new.safetensors");
    cr_assert_eq(tg_check_save_path(fresh), 0, "%s", tg_last_error());
    cr_assert_eq(count_entries(dir, NULL, 0), 5, "the check wrote something");
    cr_assert_neq(tg_check_save_path("/dev/null"), 0);
    cr_assert(strstr(tg_last_error(), "/dev/null: is a character device"), "%s", tg_last_error());
    cr_assert_neq(tg_check_save_path(to_fifo), 0);
    cr_assert_neq(tg_check_save_path(NULL), 0);
    free(fresh);
    unlink(dangling);
    unlink(to_fifo);
    unlink(link);
    unlink(target);
    unlink(fifo);
    free(dangling);
    free(to_fifo);
    free(link);
    free(target);
    free(fifo);
    tg_model_free(m);
    remove_dir(dir);
}
