/* Writes the split a config makes (tg_config_load_data: the same rows
 * `tapegrad train` uses) to files every peer can read, so that all systems
 * see identical data:
 *
 *   PREFIX_train.csv, PREFIX_validation.csv, PREFIX_test.csv
 *       raw features then the class id, no header (validation only when not empty)
 *   PREFIX_train.svm, PREFIX_test.svm
 *       libsvm format for liblinear, standardized with the training rows'
 *       moments as `tapegrad train` does (liblinear has no scaler of its own)
 *
 * usage: export_split CONFIG PREFIX [--validation-split F] */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_csv(const tg_dataset *ds, const char *prefix, const char *part)
{
    char path[4096];
    snprintf(path, sizeof path, "%s_%s.csv", prefix, part);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (int64_t r = 0; r < ds->rows; r++) {
        for (int64_t j = 0; j < ds->features; j++)
            fprintf(f, "%.9g,", ds->x[r * ds->features + j]);
        fprintf(f, "%lld\n", (long long)ds->y[r]);
    }
    if (ferror(f) | fclose(f)) {
        perror(path);
        exit(1);
    }
}

static void write_svm(const tg_dataset *ds, const float *mean, const float *std, const char *prefix, const char *part)
{
    char path[4096];
    snprintf(path, sizeof path, "%s_%s.svm", prefix, part);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (int64_t r = 0; r < ds->rows; r++) {
        fprintf(f, "%lld", (long long)ds->y[r]);
        for (int64_t j = 0; j < ds->features; j++) {
            float v = (ds->x[r * ds->features + j] - mean[j]) / std[j];
            if (v != 0)
                fprintf(f, " %lld:%.9g", (long long)j + 1, v);
        }
        fputc('\n', f);
    }
    if (ferror(f) | fclose(f)) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--validation-split"))) {
        fprintf(stderr, "usage: export_split CONFIG PREFIX [--validation-split F]\n");
        return 2;
    }
    tg_config *cfg = tg_config_load(argv[1]);
    if (!cfg)
        bench_fail("loading the config");
    if (argc == 5)
        cfg->data.validation_split = atof(argv[4]);
    tg_dataset *train, *validation, *test;
    if (tg_config_load_data(cfg, &train, &validation, &test))
        bench_fail("loading the data");
    float *mean = malloc((size_t)train->features * sizeof *mean), *std = malloc((size_t)train->features * sizeof *std);
    if (!mean || !std || tg_dataset_moments(train, mean, std))
        bench_fail("computing moments");
    write_csv(train, argv[2], "train");
    if (validation->rows > 0)
        write_csv(validation, argv[2], "validation");
    write_csv(test, argv[2], "test");
    write_svm(train, mean, std, argv[2], "train");
    write_svm(test, mean, std, argv[2], "test");
    printf("{\"train\": %lld, \"validation\": %lld, \"test\": %lld, \"features\": %lld, \"classes\": %lld}\n",
           (long long)train->rows, (long long)validation->rows, (long long)test->rows, (long long)train->features,
           (long long)train->classes);
    free(mean);
    free(std);
    tg_dataset_free(train);
    tg_dataset_free(validation);
    tg_dataset_free(test);
    tg_config_free(cfg);
    return 0;
}
