/* CSV loading and data-set utilities. Expected values are read off the
 * bundled files by eye (data/iris.csv, data/digits.csv) or computed by hand;
 * every error case writes a small file and checks that the message names the
 * place. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, mkdtemp */

#include <criterion/criterion.h>

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* data/NAME next to this file's tests/ folder. */
static const char *data_path(char *buf, size_t size, const char *name)
{
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    if (!slash)
        snprintf(buf, size, "../data/%s", name);
    else
        snprintf(buf, size, "%.*s/../data/%s", (int)(slash - file), file, name);
    return buf;
}

/* Loads text written to a temp file; *path keeps the name for messages (the file is removed). */
static tg_dataset *load_text_len(const char *text, size_t len, const tg_csv_opts *opts, char *path, size_t size)
{
    write_temp(path, size, "tg_csv", text, len);
    tg_clear_error();
    tg_dataset *ds = tg_csv_load(path, opts);
    unlink(path);
    return ds;
}

static tg_dataset *load_text(const char *text, const tg_csv_opts *opts)
{
    char path[64];
    return load_text_len(text, strlen(text), opts, path, sizeof path);
}

/* Asserts that text fails to load and that the error has the file name and each of the pieces. */
static void expect_error(const char *text, const tg_csv_opts *opts, const char *piece1, const char *piece2)
{
    char path[64];
    tg_dataset *ds = load_text_len(text, strlen(text), opts, path, sizeof path);
    const char *msg = tg_last_error();
    cr_assert_null(ds, "expected an error for:\n%s", text);
    cr_assert_not_null(strstr(msg, path), "the error does not name the file: %s", msg);
    cr_assert_not_null(strstr(msg, piece1), "expected '%s' in: %s", piece1, msg);
    if (piece2)
        cr_assert_not_null(strstr(msg, piece2), "expected '%s' in: %s", piece2, msg);
}

static float at(const tg_dataset *ds, int64_t row, int64_t feature) { return ds->x[row * ds->features + feature]; }

/* ---- the bundled files ---- */

Test(csv, iris)
{
    char path[4096];
    tg_dataset *ds = tg_csv_load(data_path(path, sizeof path, "iris.csv"), NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 150);
    cr_assert_eq(ds->features, 4);
    cr_assert_eq(ds->classes, 3);
    cr_assert_str_eq(ds->label_names[0], "setosa");
    cr_assert_str_eq(ds->label_names[1], "versicolor");
    cr_assert_str_eq(ds->label_names[2], "virginica");
    cr_assert_not_null(ds->feature_names);
    const char *names[] = { "sepal_length", "sepal_width", "petal_length", "petal_width" };
    for (int f = 0; f < 4; f++)
        cr_assert_str_eq(ds->feature_names[f], names[f]);
    /* line 2: 5.1,3.5,1.4,0.2,setosa */
    const float first[] = { 5.1f, 3.5f, 1.4f, 0.2f };
    for (int f = 0; f < 4; f++)
        cr_assert_eq(at(ds, 0, f), first[f]);
    cr_assert_eq(ds->y[0], 0);
    /* line 3: 4.9,3.0,1.4,0.2,setosa */
    cr_assert_eq(at(ds, 1, 0), 4.9f);
    cr_assert_eq(at(ds, 1, 1), 3.0f);
    /* line 52: 7.0,3.2,4.7,1.4,versicolor; line 102: 6.3,3.3,6.0,2.5,virginica */
    cr_assert_eq(at(ds, 50, 0), 7.0f);
    cr_assert_eq(at(ds, 50, 2), 4.7f);
    cr_assert_eq(ds->y[50], 1);
    cr_assert_eq(at(ds, 100, 3), 2.5f);
    cr_assert_eq(ds->y[100], 2);
    /* line 151: 5.9,3.0,5.1,1.8,virginica */
    cr_assert_eq(at(ds, 149, 0), 5.9f);
    cr_assert_eq(at(ds, 149, 3), 1.8f);
    cr_assert_eq(ds->y[149], 2);
    int64_t per_class[3] = { 0 };
    for (int64_t r = 0; r < ds->rows; r++)
        per_class[ds->y[r]]++;
    for (int c = 0; c < 3; c++)
        cr_assert_eq(per_class[c], 50);
    tg_dataset_free(ds);
}

Test(csv, digits)
{
    char path[4096];
    tg_dataset *ds = tg_csv_load(data_path(path, sizeof path, "digits.csv"), NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 1797);
    cr_assert_eq(ds->features, 64);
    cr_assert_eq(ds->classes, 10);
    for (int c = 0; c < 10; c++) {
        char digit[4];
        snprintf(digit, sizeof digit, "%d", c);
        cr_assert_str_eq(ds->label_names[c], digit);
    }
    cr_assert_str_eq(ds->feature_names[0], "p0");
    cr_assert_str_eq(ds->feature_names[63], "p63");
    /* line 2 starts 0,0,5,13,9,1 and ends ...,10,0,0,0,0 (digit 0); the last line is an 8 */
    cr_assert_eq(at(ds, 0, 2), 5.0f);
    cr_assert_eq(at(ds, 0, 3), 13.0f);
    cr_assert_eq(ds->y[0], 0);
    cr_assert_eq(ds->y[1796], 8);
    /* class counts from `cut -d, -f65 digits.csv | sort | uniq -c` */
    const int64_t expected[10] = { 178, 182, 177, 183, 181, 182, 181, 179, 174, 180 };
    int64_t counts[10] = { 0 };
    for (int64_t r = 0; r < ds->rows; r++) {
        cr_assert(ds->y[r] >= 0 && ds->y[r] < 10);
        counts[ds->y[r]]++;
    }
    for (int c = 0; c < 10; c++)
        cr_assert_eq(counts[c], expected[c], "class %d", c);
    for (int64_t i = 0; i < ds->rows * ds->features; i++)
        cr_assert(ds->x[i] >= 0.0f && ds->x[i] <= 16.0f);
    tg_dataset_free(ds);
}

/* ---- headers, columns, labels ---- */

Test(csv, header_detection)
{
    tg_dataset *ds = load_text("1,2,0\n3,4,1\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 2);
    cr_assert_null(ds->feature_names);
    cr_assert_eq(at(ds, 0, 0), 1.0f);
    tg_dataset_free(ds);

    /* a non-numeric feature cell makes a header; the label cell alone does not */
    ds = load_text("a,2,x\n3,4,y\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 1);
    cr_assert_str_eq(ds->feature_names[0], "a");
    cr_assert_str_eq(ds->feature_names[1], "2");
    tg_dataset_free(ds);
    ds = load_text("1,2,x\n3,4,y\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 2);
    tg_dataset_free(ds);

    /* forced: a numeric first row is a header */
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.header = 1;
    ds = load_text("1,2,x\n3,4,y\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 1);
    cr_assert_str_eq(ds->feature_names[1], "2");
    tg_dataset_free(ds);

    /* forced off: the header's text is not a number */
    opts.header = 0;
    expect_error("a,b,label\n1,2,x\n", &opts, ":1:1: line 1, column 1: 'a' is not a number", NULL);
}

Test(csv, label_column_by_index)
{
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.label_column = 0;
    tg_dataset *ds = load_text("y,a,b\ncat,1,2\ndog,3,4\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->features, 2);
    cr_assert_str_eq(ds->feature_names[0], "a");
    cr_assert_eq(at(ds, 1, 1), 4.0f);
    cr_assert_eq(ds->y[1], 1);
    tg_dataset_free(ds);

    opts.label_column = -2;
    ds = load_text("a,y,b\n1,cat,2\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_str_eq(ds->label_names[0], "cat");
    cr_assert_eq(at(ds, 0, 1), 2.0f);
    tg_dataset_free(ds);

    opts.label_column = 3;
    expect_error("a,b,y\n1,2,x\n", &opts, "label column 3 is out of range", "line 1 has 3 columns");
    opts.label_column = -4;
    expect_error("a,b,y\n1,2,x\n", &opts, "label column -4 is out of range", NULL);
}

Test(csv, label_column_by_name)
{
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.label_name = "species";
    tg_dataset *ds = load_text("length,species,width\n1.5,a,2\n2.5,b,3\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->features, 2);
    cr_assert_str_eq(ds->feature_names[0], "length");
    cr_assert_str_eq(ds->feature_names[1], "width");
    cr_assert_eq(at(ds, 1, 0), 2.5f);
    cr_assert_eq(at(ds, 1, 1), 3.0f);
    cr_assert_eq(ds->y[1], 1);
    tg_dataset_free(ds);

    opts.label_name = "class";
    expect_error("length,species,width\n1.5,a,2\n", &opts, "no column named 'class'", "length, species, width");
    opts.label_name = "y";
    expect_error("y,a,y\nq,1,r\n", &opts, "duplicate column", "columns 1 and 3");
    opts.header = 0;
    expect_error("y,a\nq,1\n", &opts, "needs a header", NULL);
}

Test(csv, feature_columns)
{
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.columns = (int64_t[]){ 2, 0 };
    opts.n_columns = 2;
    tg_dataset *ds = load_text("a,b,c,y\n1,2,3,x\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->features, 2);
    cr_assert_eq(at(ds, 0, 0), 3.0f);
    cr_assert_eq(at(ds, 0, 1), 1.0f);
    cr_assert_str_eq(ds->feature_names[0], "c");
    tg_dataset_free(ds);

    /* unused columns may hold anything */
    opts.columns = (int64_t[]){ 0 };
    opts.n_columns = 1;
    ds = load_text("a,b,y\n1,junk,x\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_dataset_free(ds);

    opts.columns = (int64_t[]){ 0, 2, 0 };
    opts.n_columns = 3;
    expect_error("a,b,c,y\n1,2,3,x\n", &opts, "duplicate column: column 1 is listed twice", NULL);
    opts.columns = (int64_t[]){ 0, 4 };
    opts.n_columns = 2;
    expect_error("a,b,c,y\n1,2,3,x\n", &opts, "feature column 4 (columns[1]) is out of range", NULL);
    opts.columns = (int64_t[]){ 3 };
    opts.n_columns = 1;
    expect_error("a,b,c,y\n1,2,3,x\n", &opts, "column 4 (columns[0]) is the label column", NULL);
}

Test(csv, integer_labels_are_class_ids)
{
    tg_dataset *ds = load_text("x,label\n0.5,3\n1.5,0\n2.5,3\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->classes, 4);
    cr_assert_eq(ds->y[0], 3);
    cr_assert_eq(ds->y[1], 0);
    cr_assert_str_eq(ds->label_names[1], "1");
    cr_assert_str_eq(ds->label_names[3], "3");
    tg_dataset_free(ds);

    /* one non-integer label: every label is text, in order of first appearance */
    ds = load_text("x,label\n0.5,3\n1.5,b\n2.5,3\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->classes, 2);
    cr_assert_str_eq(ds->label_names[0], "3");
    cr_assert_str_eq(ds->label_names[1], "b");
    cr_assert_eq(ds->y[2], 0);
    tg_dataset_free(ds);

    ds = load_text("x,label\n0.5,-1\n1.5,1\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_str_eq(ds->label_names[0], "-1");
    tg_dataset_free(ds);

    expect_error("x,label\n0.5,1\n1.5,99999999999\n", NULL, ":3:2: line 3", "too large for a class id");
}

Test(csv, given_label_names)
{
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    char *names[] = { "setosa", "versicolor", "virginica" };
    opts.label_names = names;
    opts.n_label_names = 3;
    tg_dataset *ds = load_text("a,b\n1,virginica\n2,setosa\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->classes, 3);
    cr_assert_eq(ds->y[0], 2);
    cr_assert_eq(ds->y[1], 0);
    cr_assert_str_eq(ds->label_names[1], "versicolor");
    cr_assert_neq((void *)ds->label_names[1], (void *)names[1]); /* copies */
    tg_dataset_free(ds);

    expect_error("a,b\n1,virginica\n2,rose\n", &opts, ":3:2: line 3, column 2 ('b'): unknown label 'rose'",
                 "setosa, versicolor, virginica");

    /* integer text maps by name, not by value */
    char *digits[] = { "7", "3" };
    opts.label_names = digits;
    opts.n_label_names = 2;
    ds = load_text("1,3\n2,7\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->classes, 2);
    cr_assert_eq(ds->y[0], 1);
    cr_assert_eq(ds->y[1], 0);
    tg_dataset_free(ds);
    expect_error("1,3\n2,0\n", &opts, ":2:2: line 2, column 2: unknown label '0'", NULL);

    char *twice[] = { "a", "a" };
    opts.label_names = twice;
    expect_error("1,a\n", &opts, "label_names has 'a' twice", NULL);
}

/* ---- line endings and layout ---- */

Test(csv, crlf_and_trailing_lines)
{
    tg_dataset *ds = load_text("a,b,label\r\n1,2,x\r\n3,4,y\r\n\r\n  \r\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 2);
    cr_assert_str_eq(ds->feature_names[1], "b");
    cr_assert_str_eq(ds->label_names[1], "y"); /* no '\r' left on the last cell */
    cr_assert_eq(at(ds, 1, 1), 4.0f);
    tg_dataset_free(ds);

    ds = load_text("a,b,label\n1,2,x\n3,4,y", NULL); /* no final newline */
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 2);
    cr_assert_str_eq(ds->label_names[1], "y");
    cr_assert_eq(at(ds, 1, 1), 4.0f);
    tg_dataset_free(ds);

    ds = load_text("a,b,label\n1,2,x\n\n\n\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 1);
    tg_dataset_free(ds);

    /* a UTF-8 byte order mark is not part of the first name */
    ds = load_text("\xEF\xBB\xBF"
                   "a,b,label\n1,2,x\n",
                   NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_str_eq(ds->feature_names[0], "a");
    tg_dataset_free(ds);
}

Test(csv, spaces_quotes_and_delimiters)
{
    tg_dataset *ds = load_text(" a , \"b\" ,label\n 1.5 ,\"-2e1\", \"x, \"\"quoted\"\"\" \n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_str_eq(ds->feature_names[0], "a");
    cr_assert_str_eq(ds->feature_names[1], "b");
    cr_assert_eq(at(ds, 0, 0), 1.5f);
    cr_assert_eq(at(ds, 0, 1), -20.0f);
    cr_assert_str_eq(ds->label_names[0], "x, \"quoted\"");
    tg_dataset_free(ds);

    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.delimiter = ';';
    ds = load_text("a;b;label\n1,5;2;x\n", &opts);
    cr_assert_null(ds, "a decimal comma is not a number");
    ds = load_text("a;b;label\n.5;2.;x\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(at(ds, 0, 0), 0.5f);
    cr_assert_eq(at(ds, 0, 1), 2.0f);
    tg_dataset_free(ds);

    opts.delimiter = '\t';
    ds = load_text("a\tb\tlabel\n1\t 2 \tx y\n", &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(at(ds, 0, 1), 2.0f);
    cr_assert_str_eq(ds->label_names[0], "x y");
    tg_dataset_free(ds);

    expect_error("a,b\n1,\"x\n", NULL, ":2:2: line 2, column 2", "no closing quote");
    expect_error("a,b\n1,\"x\"y\n", NULL, ":2:2: line 2, column 2", "text after a closing quote");
}

Test(csv, long_lines)
{
    /* 5000 features and a 100000-character label: nothing is truncated */
    size_t features = 5000, label_len = 100000;
    size_t size = features * 8 + label_len + 16;
    char *text = malloc(size);
    cr_assert_not_null(text);
    size_t used = 0;
    for (size_t f = 0; f < features; f++)
        used += (size_t)snprintf(text + used, size - used, "%zu,", f);
    memset(text + used, 'q', label_len);
    used += label_len;
    text[used++] = '\n';
    text[used] = '\0';
    char path[64];
    tg_dataset *ds = load_text_len(text, used, NULL, path, sizeof path);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->features, (int64_t)features);
    cr_assert_eq(at(ds, 0, 4999), 4999.0f);
    cr_assert_eq(strlen(ds->label_names[0]), label_len);
    tg_dataset_free(ds);
    free(text);
}

Test(csv, numbers_do_not_depend_on_the_locale)
{
    const char *locales[] = { "de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "nl_NL.UTF-8" };
    const char *found = NULL;
    for (size_t i = 0; i < sizeof locales / sizeof *locales && !found; i++)
        found = setlocale(LC_NUMERIC, locales[i]);
    if (!found)
        cr_skip_test("no locale with a decimal comma is installed");
    cr_assert_str_eq(localeconv()->decimal_point, ",");
    tg_dataset *ds = load_text("a,b,label\n1.25,-3.5e-1,x\n", NULL);
    setlocale(LC_NUMERIC, "C");
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(at(ds, 0, 0), 1.25f);
    cr_assert_eq(at(ds, 0, 1), -0.35f);
    tg_dataset_free(ds);
}

/* ---- errors ---- */

Test(csv, missing_file_and_directory)
{
    tg_clear_error();
    cr_assert_null(tg_csv_load("/tmp/tg_no_such_dir/none.csv", NULL));
    cr_assert_not_null(strstr(tg_last_error(), "/tmp/tg_no_such_dir/none.csv"), "%s", tg_last_error());
    cr_assert_not_null(strstr(tg_last_error(), "No such file or directory"), "%s", tg_last_error());

    char dir[] = "/tmp/tg_csv_dir_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_null(tg_csv_load(dir, NULL));
    cr_assert_not_null(strstr(tg_last_error(), dir), "%s", tg_last_error());
    cr_assert_not_null(strstr(tg_last_error(), "is a directory"), "%s", tg_last_error());
    rmdir(dir);
}

Test(csv, empty_and_header_only)
{
    expect_error("", NULL, "the file is empty", NULL);
    expect_error("\n \r\n\n", NULL, "the file is empty", NULL);
    expect_error("a,b,label\n", NULL, "no data rows", NULL);
    expect_error("a,b,label\n\n\n", NULL, "no data rows", NULL);
}

Test(csv, ragged_rows)
{
    expect_error("a,b,c,d,label\n1,2,3,4,x\n1,2,3,4,x\n1,2,3,4,x\n1,2,3,4,x\n1,2,3,4,x\n1,2,3,x\n", NULL,
                 ":7: line 7 has 4 fields, expected 5", NULL);
    expect_error("a,b,label\n1,2,x\n1,2,x,4\n", NULL, "line 3 has 4 fields, expected 3", NULL);
    expect_error("a,b,label\n1,2,x\n7\n", NULL, "line 3 has 1 field, expected 3", NULL);
}

Test(csv, bad_cells)
{
    expect_error("sepal_length,sepal_width,label\n1,2,x\n3,abc,y\n", NULL,
                 ":3:2: line 3, column 2 ('sepal_width'): 'abc' is not a number", NULL);
    expect_error("1,2,x\n3,,y\n", NULL, ":2:2: line 2, column 2: '' is not a number", NULL);
    expect_error("1,2,x\n3,0x10,y\n", NULL, "'0x10' is not a number", NULL);
    expect_error("1,2,x\n3,1e,y\n", NULL, "'1e' is not a number", NULL);
    expect_error("1,2,x\n3,1.2.3,y\n", NULL, "'1.2.3' is not a number", NULL);
    expect_error("1,2,x\n2,2,x\n3,3,x\n4,4,x\n5,5,x\n6,6,x\n7,7,x\n8,8,x\nNaN,1,y\n", NULL,
                 ":9:1: line 9, column 1: NaN is not allowed", NULL);
    expect_error("a,b,label\n1,-nan,y\n", NULL, ":2:2: line 2, column 2 ('b'): NaN is not allowed", NULL);
    expect_error("a,b,label\n1,-Infinity,y\n", NULL, ":2:2: line 2, column 2 ('b'): Inf is not allowed", NULL);
    expect_error("a,b,label\n1,inf,y\n", NULL, "Inf is not allowed", NULL);
    expect_error("a,b,label\n1,1e39,y\n", NULL, ":2:2: line 2, column 2 ('b'): '1e39' is out of the float32 range",
                 NULL);
    expect_error("a,b,label\n1,1e999,y\n", NULL, "'1e999' is out of the float32 range", NULL);
    expect_error("a,b,label\n1,2,\n", NULL, ":2:3: line 2, column 3 ('label'): the label is empty", NULL);
    /* long cells are cut in the message */
    expect_error("a,b,label\n1,zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz,y\n", NULL,
                 "zzz...' is not a number", NULL);
}

Test(csv, float32_limits)
{
    /* tiny values underflow quietly; FLT_MAX as numpy prints it (3.4028235e+38, a little above it) is FLT_MAX */
    tg_dataset *ds = load_text("1e-50,-1e-320,3.4028235e+38,-3.4028235e38,x\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(at(ds, 0, 0), 0.0f);
    cr_assert_eq(at(ds, 0, 1), -0.0f);
    cr_assert_eq(at(ds, 0, 2), FLT_MAX);
    cr_assert_eq(at(ds, 0, 3), -FLT_MAX);
    tg_dataset_free(ds);
    /* 2^128 - 2^103, FLT_MAX plus half an ulp, would round to infinity */
    expect_error("3.4028235677973366e38,x\n", NULL, "is out of the float32 range", NULL);
}

Test(csv, bad_options)
{
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.header = 2;
    expect_error("1,x\n", &opts, "header is 2", NULL);
    opts = TG_CSV_OPTS_DEFAULT;
    opts.columns = (int64_t[]){ 0 };
    opts.n_columns = 0;
    expect_error("1,x\n", &opts, "n_columns 0", NULL);
    opts = TG_CSV_OPTS_DEFAULT;
    opts.label_column = 0;
    expect_error("label\nx\n", &opts, "no feature columns", NULL);
}

/* ---- allocation failures: each one reported, nothing left behind ---- */

static struct {
    int64_t attempts, fail_at, live;
} counts;

static void *counting_malloc(size_t bytes)
{
    if (++counts.attempts == counts.fail_at)
        return NULL;
    void *p = malloc(bytes);
    counts.live += p != NULL;
    return p;
}

static void *counting_realloc(void *old, size_t bytes)
{
    if (++counts.attempts == counts.fail_at)
        return NULL;
    void *p = realloc(old, bytes);
    counts.live += p && !old;
    return p;
}

static void counting_free(void *p)
{
    counts.live -= p != NULL;
    free(p);
}

Test(csv, every_allocation_failure_is_clean)
{
    const char *text = "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n";
    char path[64];
    write_temp(path, sizeof path, "tg_csv", text, strlen(text));
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    bool succeeded = false;
    for (int64_t fail_at = 1; fail_at < 200 && !succeeded; fail_at++) {
        counts.attempts = counts.live = 0;
        counts.fail_at = fail_at;
        tg_clear_error();
        tg_dataset *ds = tg_csv_load(path, NULL);
        if (ds) {
            succeeded = true;
            cr_assert_eq(ds->rows, 3);
            cr_assert_eq(ds->y[2], 0);
            tg_dataset_free(ds);
        } else {
            cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "attempt %lld: %s", (long long)fail_at,
                               tg_last_error());
        }
        cr_assert_eq(counts.live, 0, "attempt %lld leaves %lld blocks", (long long)fail_at, (long long)counts.live);
    }
    tg_set_allocator(NULL, NULL, NULL);
    unlink(path);
    cr_assert(succeeded);
}

/* ---- data-set utilities ---- */

/* n rows: feature 0 is the row number, feature 1 its square; labels alternate a, b. */
static tg_dataset *numbered(int64_t n)
{
    char *text = malloc((size_t)n * 32 + 1);
    cr_assert_not_null(text);
    size_t used = 0;
    for (int64_t i = 0; i < n; i++)
        used += (size_t)sprintf(text + used, "%lld,%lld,%s\n", (long long)i, (long long)(i * i), i % 2 ? "b" : "a");
    tg_dataset *ds = load_text(text, NULL);
    free(text);
    cr_assert_not_null(ds, "%s", tg_last_error());
    return ds;
}

Test(dataset, subset)
{
    tg_dataset *ds = numbered(5);
    tg_dataset *sub = tg_dataset_subset(ds, (int64_t[]){ 4, 1, 4 }, 3);
    cr_assert_not_null(sub, "%s", tg_last_error());
    cr_assert_eq(sub->rows, 3);
    cr_assert_eq(sub->features, 2);
    cr_assert_eq(sub->classes, 2);
    cr_assert_eq(at(sub, 0, 0), 4.0f);
    cr_assert_eq(at(sub, 0, 1), 16.0f);
    cr_assert_eq(at(sub, 1, 1), 1.0f);
    cr_assert_eq(sub->y[0], 0);
    cr_assert_eq(sub->y[1], 1);
    cr_assert_str_eq(sub->label_names[1], "b");
    cr_assert_neq((void *)sub->label_names, (void *)ds->label_names);
    cr_assert_null(sub->feature_names);
    tg_dataset_free(sub);

    sub = tg_dataset_subset(ds, NULL, 0);
    cr_assert_not_null(sub, "%s", tg_last_error());
    cr_assert_eq(sub->rows, 0);
    tg_dataset_free(sub);

    cr_assert_null(tg_dataset_subset(ds, (int64_t[]){ 0, 5 }, 2));
    cr_assert_not_null(strstr(tg_last_error(), "idx[1] is 5, expected [0, 5)"), "%s", tg_last_error());
    cr_assert_null(tg_dataset_subset(ds, (int64_t[]){ -1 }, 1));
    tg_dataset_free(ds);
    tg_dataset_free(NULL);
}

Test(dataset, split_is_a_seeded_fisher_yates_shuffle)
{
    tg_dataset *ds = numbered(10);
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    tg_dataset *first = NULL, *second = NULL;
    cr_assert_eq(tg_dataset_split(ds, 0.25, &rng, &first, &second), 0, "%s", tg_last_error());
    /* round(0.25 * 10) = round(2.5) = 3 rows in the second part */
    cr_assert_eq(first->rows, 7);
    cr_assert_eq(second->rows, 3);

    /* the same shuffle written out here: positions 9..1 swap with tg_rng_below(i + 1) */
    int64_t order[10];
    for (int i = 0; i < 10; i++)
        order[i] = i;
    tg_rng_seed(&rng, 42);
    for (int i = 9; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(&rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    bool seen[10] = { false };
    for (int i = 0; i < 10; i++) {
        const tg_dataset *part = i < 7 ? first : second;
        int64_t r = i < 7 ? i : i - 7;
        cr_assert_eq(at(part, r, 0), (float)order[i], "position %d", i);
        cr_assert_eq(at(part, r, 1), (float)(order[i] * order[i]));
        cr_assert_eq(part->y[r], order[i] % 2);
        seen[order[i]] = true;
    }
    for (int i = 0; i < 10; i++)
        cr_assert(seen[i], "row %d is missing", i);
    cr_assert_str_eq(second->label_names[0], "a");

    /* same seed, same split */
    tg_dataset *first2 = NULL, *second2 = NULL;
    tg_rng_seed(&rng, 42);
    cr_assert_eq(tg_dataset_split(ds, 0.25, &rng, &first2, &second2), 0);
    cr_assert_eq(memcmp(first->x, first2->x, 7 * 2 * sizeof(float)), 0);
    cr_assert_eq(memcmp(second->y, second2->y, 3 * sizeof(int64_t)), 0);
    tg_dataset_free(first);
    tg_dataset_free(second);
    tg_dataset_free(first2);
    tg_dataset_free(second2);

    /* fraction 0: everything in first, an empty second */
    cr_assert_eq(tg_dataset_split(ds, 0.0, &rng, &first, &second), 0);
    cr_assert_eq(first->rows, 10);
    cr_assert_eq(second->rows, 0);
    tg_dataset_free(first);
    tg_dataset_free(second);

    first = second = NULL;
    cr_assert_neq(tg_dataset_split(ds, 1.0, &rng, &first, &second), 0);
    cr_assert_not_null(strstr(tg_last_error(), "expected [0, 1)"), "%s", tg_last_error());
    cr_assert_neq(tg_dataset_split(ds, -0.1, &rng, &first, &second), 0);
    cr_assert_neq(tg_dataset_split(ds, NAN, &rng, &first, &second), 0);
    cr_assert_null(first);
    cr_assert_null(second);
    tg_dataset_free(ds);
}

Test(dataset, iris_split_sizes)
{
    char path[4096];
    tg_dataset *ds = tg_csv_load(data_path(path, sizeof path, "iris.csv"), NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_rng a, b;
    tg_rng_seed(&a, 7);
    tg_rng_seed(&b, 8);
    tg_dataset *a1, *a2, *b1, *b2;
    cr_assert_eq(tg_dataset_split(ds, 0.2, &a, &a1, &a2), 0);
    cr_assert_eq(tg_dataset_split(ds, 0.2, &b, &b1, &b2), 0);
    cr_assert_eq(a1->rows, 120);
    cr_assert_eq(a2->rows, 30);
    cr_assert_str_eq(a2->feature_names[3], "petal_width");
    cr_assert_neq(memcmp(a2->x, b2->x, 30 * 4 * sizeof(float)), 0, "different seeds, different splits");
    tg_dataset_free(a1);
    tg_dataset_free(a2);
    tg_dataset_free(b1);
    tg_dataset_free(b2);
    tg_dataset_free(ds);
}

Test(dataset, moments_and_standardize)
{
    /* column 0: 1, 3, 5 -> mean 3, population variance 8/3; column 1 constant 2; column 2: 10, 20, 60 -> mean 30,
     * variance (400 + 100 + 900) / 3 */
    tg_dataset *ds = load_text("1,2,10,x\n3,2,20,y\n5,2,60,x\n", NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    float mean[3], std[3];
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0, "%s", tg_last_error());
    cr_assert_float_eq(mean[0], 3.0f, 1e-6);
    cr_assert_float_eq(std[0], 1.6329932f, 1e-6);
    cr_assert_float_eq(mean[1], 2.0f, 1e-6);
    cr_assert_eq(std[1], 1.0f, "a constant column's deviation is stored as 1");
    cr_assert_float_eq(mean[2], 30.0f, 1e-5);
    cr_assert_float_eq(std[2], 21.602469f, 1e-4);

    tg_dataset_standardize(ds, mean, std);
    cr_assert_float_eq(at(ds, 0, 0), -1.2247449f, 1e-6);
    cr_assert_float_eq(at(ds, 1, 0), 0.0f, 1e-6);
    cr_assert_float_eq(at(ds, 2, 0), 1.2247449f, 1e-6);
    for (int r = 0; r < 3; r++)
        cr_assert_eq(at(ds, r, 1), 0.0f);
    cr_assert_float_eq(at(ds, 2, 2), 30.0f / 21.602469f, 1e-5);

    /* after standardizing, mean 0 and deviation 1 */
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0);
    cr_assert_float_eq(mean[0], 0.0f, 1e-6);
    cr_assert_float_eq(std[0], 1.0f, 1e-6);
    cr_assert_float_eq(std[2], 1.0f, 1e-6);

    cr_assert_neq(tg_dataset_moments(NULL, mean, std), 0);
    tg_dataset *empty = tg_dataset_subset(ds, NULL, 0);
    cr_assert_neq(tg_dataset_moments(empty, mean, std), 0);
    cr_assert_not_null(strstr(tg_last_error(), "no rows"), "%s", tg_last_error());
    tg_dataset_free(empty);
    tg_dataset_free(ds);
}
