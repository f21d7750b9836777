/* A rank's part of a training file (src/io/shard.c, the part loaders in
 * csv.c, libsvm.c, idx.c): whatever the number of parts, the parts' rows put
 * end to end are the whole file's rows, in order, bit for bit (the oracle is
 * the whole-file loader); a part of a file with fewer lines than parts may be
 * empty; a bad cell is named by the file's own line, whichever part holds it.
 * One process: the ranks' label merge is not run, so each part names its own
 * classes, and rows are compared by their label's text. The label merge and
 * the splits across ranks are checked by scripts/test-mpi.sh against one
 * process, bit for bit or within the stated bound. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "io/io_internal.h"

/* A CSV file made to trip a part boundary: a byte order mark, a header, blank lines, CRLF ends, text labels
 * first met far apart, one long line, and a last line without its newline. */
static const char CSV[] = "\xEF\xBB\xBF"
                          "a,b,label\r\n"
                          "\r\n"
                          "1,2,dog\r\n"
                          "3,4,cat\n"
                          "\n"
                          "\n"
                          "5.5,-6,dog\n"
                          "7,8.25,emu\r\n"
                          "9,10,cat\n"
                          "11,12.000000000000000000000000000000000000000000000000000001,owl\n"
                          "13,14,dog\n"
                          "15,16,emu";

static const char SVM[] = "\xEF\xBB\xBF"
                          "# a comment line\n"
                          "dog 1:1 3:2\n"
                          "cat 2:4 # a comment after pairs\n"
                          "\n"
                          "dog 5:-6\r\n"
                          "emu 1:7 2:8.25 9:1\n"
                          "   \n"
                          "cat 4:10\n"
                          "owl 1:11 2:12\n"
                          "dog 3:14\n"
                          "emu 2:16";

static char *write_text(const char *dir, const char *name, const char *text)
{
    char *path = join_path(dir, name);
    write_bytes(path, text, strlen(text));
    return path;
}

/* Row r of ds against row at of whole: label text, and the feature values (dense, or sparse by column). */
static void assert_same_row(const tg_dataset *ds, int64_t r, const tg_dataset *whole, int64_t at, int parts)
{
    cr_assert_str_eq(ds->label_names[ds->y[r]], whole->label_names[whole->y[at]], "%d parts: row %lld", parts,
                     (long long)at);
    if (whole->x) {
        cr_assert_eq(
            memcmp(ds->x + r * ds->features, whole->x + at * whole->features, (size_t)whole->features * sizeof(float)),
            0, "%d parts: row %lld's values", parts, (long long)at);
        return;
    }
    int64_t a = ds->row_ptr[r], n = ds->row_ptr[r + 1] - a, b = whole->row_ptr[at];
    cr_assert_eq(n, whole->row_ptr[at + 1] - b, "%d parts: row %lld's length", parts, (long long)at);
    for (int64_t k = 0; k < n; k++) {
        cr_assert_eq(ds->col[a + k], whole->col[b + k]);
        cr_assert_eq(ds->val[a + k], whole->val[b + k]);
    }
}

typedef tg_dataset *(*part_loader)(const char *path, int part, int parts);

static tg_dataset *csv_part(const char *path, int part, int parts) { return tg_csv_load_part(path, NULL, part, parts); }
static tg_dataset *svm_part(const char *path, int part, int parts)
{
    return tg_libsvm_load_part(path, NULL, part, parts);
}

/* For 1 to 3 times as many parts as the file has lines: the parts end to end are the whole file. */
static void check_parts(const char *path, const tg_dataset *whole, part_loader load, int lines)
{
    for (int parts = 1; parts <= 3 * lines; parts++) {
        int64_t at = 0;
        int empty = 0;
        for (int p = 0; p < parts; p++) {
            tg_dataset *ds = load(path, p, parts);
            cr_assert_not_null(ds, "%d parts, part %d: %s", parts, p, tg_last_error());
            for (int64_t r = 0; r < ds->rows; r++, at++) {
                cr_assert_lt(at, whole->rows, "%d parts: more rows than the file", parts);
                assert_same_row(ds, r, whole, at, parts);
            }
            empty += ds->rows == 0;
            tg_dataset_free(ds);
        }
        cr_assert_eq(at, whole->rows, "%d parts: %lld rows, the file has %lld", parts, (long long)at,
                     (long long)whole->rows);
        if (parts > lines)
            cr_assert_gt(empty, 0, "%d parts of %d lines: none empty", parts, lines);
    }
}

/* The text as a file (name: its format), loaded whole (`rows` rows), then in parts. */
static void check_text(const char *name, const char *text, int64_t rows, int lines)
{
    char *dir = make_temp_dir("tapegrad-shard");
    char *path = write_text(dir, name, text);
    bool svm = strstr(name, ".svm") != NULL;
    tg_dataset *whole = svm ? tg_libsvm_load(path, NULL) : tg_csv_load(path, NULL);
    cr_assert_not_null(whole, "%s", tg_last_error());
    cr_assert_eq(whole->rows, rows);
    check_parts(path, whole, svm ? svm_part : csv_part, lines);
    tg_dataset_free(whole);
    free(path);
    free(dir);
}

Test(shard, csv_parts_end_to_end_are_the_file) { check_text("t.csv", CSV, 8, 13); }

Test(shard, csv_without_header) { check_text("n.csv", "1,2,0\n3,4,1\n5,6,0\n7,8,2\n9,10,1\n", 5, 5); }

Test(shard, libsvm_parts_end_to_end_are_the_file) { check_text("t.svm", SVM, 8, 12); }

/* A bad cell on line 9 of the file (counted by hand), in whichever part holds it. */
Test(shard, an_error_names_the_file_line_in_any_part)
{
    char *dir = make_temp_dir("tapegrad-shard");
    char *csv =
        write_text(dir, "bad.csv", "a,b,label\n1,2,x\n\n3,4,y\n5,6,x\n7,8,y\n9,10,x\n11,12,y\n13,oops,x\n15,16,y\n");
    char *svm = write_text(dir, "bad.svm", "x 1:1\ny 1:2\n# c\nx 2:3\ny 1:4\n\nx 1:5\ny 2:6\nx 3:oops\ny 1:7\n");
    for (int parts = 1; parts <= 6; parts++) {
        int failed = 0;
        for (int p = 0; p < parts; p++) {
            tg_dataset *ds = tg_csv_load_part(csv, NULL, p, parts);
            if (!ds) {
                failed++;
                cr_assert(strstr(tg_last_error(), "bad.csv:9:2: line 9"), "%d parts, part %d: %s", parts, p,
                          tg_last_error());
            }
            tg_dataset_free(ds);
            ds = tg_libsvm_load_part(svm, NULL, p, parts);
            if (!ds) {
                failed++;
                cr_assert(strstr(tg_last_error(), "bad.svm:9:3:"), "%d parts, part %d: %s", parts, p, tg_last_error());
            }
            tg_dataset_free(ds);
        }
        cr_assert_eq(failed, 2, "%d parts: %d parts failed, expected one of each file", parts, failed);
    }
    free(csv);
    free(svm);
    free(dir);
}

/* IDX by rows: 7 images of 2 x 3 pixels (pixel k of image i is 10 i + k), labels i mod 4. */
Test(shard, idx_parts_are_row_ranges)
{
    char *dir = make_temp_dir("tapegrad-shard");
    unsigned char images[16 + 42], labels[8 + 7];
    memcpy(images, (unsigned char[]){ 0, 0, 8, 3, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 3 }, 16);
    memcpy(labels, (unsigned char[]){ 0, 0, 8, 1, 0, 0, 0, 7 }, 8);
    for (int i = 0; i < 7; i++) {
        for (int k = 0; k < 6; k++)
            images[16 + 6 * i + k] = (unsigned char)(10 * i + k);
        labels[8 + i] = (unsigned char)(i % 4);
    }
    char *ip = join_path(dir, "i.idx"), *lp = join_path(dir, "l.idx");
    write_bytes(ip, images, sizeof images);
    write_bytes(lp, labels, sizeof labels);
    for (int parts = 1; parts <= 9; parts++) {
        int64_t at = 0;
        for (int p = 0; p < parts; p++) {
            tg_dataset *ds = tg_idx_load_part(ip, lp, 1.0, p, parts);
            cr_assert_not_null(ds, "%s", tg_last_error());
            cr_assert_eq(ds->rows, 7 * (p + 1) / parts - 7 * p / parts);
            cr_assert_eq(ds->classes, 4, "every part has the file's classes");
            for (int64_t r = 0; r < ds->rows; r++, at++) {
                cr_assert_eq(ds->y[r], at % 4);
                for (int k = 0; k < 6; k++)
                    cr_assert_eq(ds->x[r * 6 + k], (float)(10 * at + k));
            }
            tg_dataset_free(ds);
        }
        cr_assert_eq(at, 7);
    }
    cr_assert_null(tg_idx_load_part(ip, lp, 1.0, 3, 3));
    cr_assert(strstr(tg_last_error(), "part 3 of 3"));
    free(ip);
    free(lp);
    free(dir);
}

/* A byte order mark in front of a data line (no header): the first line starts at byte 0 for every part,
 * so when the first cut falls inside the mark the line is still read once (it was read by none). */
Test(shard, csv_byte_order_mark_before_a_data_line)
{
    check_text("bom.csv",
               "\xEF\xBB\xBF"
               "1,2,a\n3,4,b\n",
               2, 2);
}
