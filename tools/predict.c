/* tapegrad predict MODEL DATA: each row's label and probability, or every
 * class's probability with --proba. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_predict = "usage: tapegrad predict MODEL.safetensors DATA.csv [--proba]\n"
                                   "\n"
                                   "Writes 'label,probability' for each row of DATA.csv to stdout, as CSV with a\n"
                                   "header. DATA.csv holds the model's feature columns, with or without a label\n"
                                   "column after them (a label column is ignored); or it is a libsvm file (for a\n"
                                   "model trained on libsvm data, or named *.svm, *.libsvm, *.svmlight), whose\n"
                                   "labels are ignored.\n"
                                   "\n"
                                   "  --proba       every class's probability instead, one column per class named\n"
                                   "                by its label (scikit-learn's predict_proba); a two-class model\n"
                                   "                prints P(positive) alone, the positive class being the label\n"
                                   "                that sorts second\n"
                                   "  --threads N   threads for the library and BLAS\n";

static void put_csv_field(const char *text)
{
    if (!strpbrk(text, ",\"\n")) {
        fputs(text, stdout);
        return;
    }
    putchar('"');
    for (const char *ch = text; *ch; ch++)
        printf(*ch == '"' ? "\"\"" : "%c", *ch);
    putchar('"');
}

/* --proba: a header naming the columns by class, then each row's probabilities; a two-class model prints
 * P(positive) alone (scikit-learn's predict_proba(X)[:, 1]). */
static void print_probabilities(const tg_model *m, const tg_dataset *ds, const double *probs)
{
    int64_t c = tg_model_classes(m), positive = positive_class(m, c);
    char buf[32];
    for (int64_t k = 0; k < c; k++) {
        if (positive >= 0 && k != positive)
            continue;
        if (k > 0 && positive < 0)
            putchar(',');
        put_csv_field(label_of(m, k, buf, sizeof buf));
    }
    putchar('\n');
    for (int64_t r = 0; r < ds->rows; r++) {
        if (positive >= 0) {
            printf("%.9g\n", probs[r * c + positive]);
            continue;
        }
        for (int64_t k = 0; k < c; k++)
            printf(k ? ",%.9g" : "%.9g", probs[r * c + k]);
        putchar('\n');
    }
}

static void print_labels(const tg_model *m, const tg_dataset *ds, const double *probs)
{
    int64_t c = tg_model_classes(m);
    char buf[32];
    printf("label,probability\n");
    for (int64_t r = 0; r < ds->rows; r++) {
        int64_t best = 0;
        for (int64_t k = 1; k < c; k++)
            if (probs[r * c + k] > probs[r * c + best])
                best = k;
        put_csv_field(label_of(m, best, buf, sizeof buf));
        printf(",%.6f\n", probs[r * c + best]);
    }
}

int cmd_predict(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 2, OPT_PROBA, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_predict, stdout), 0;
    if (o.n_positional != 2)
        return fail("expected MODEL and DATA, got %d argument%s", o.n_positional, o.n_positional == 1 ? "" : "s"),
               fprintf(stderr, "%s", usage_predict), 2;
    if (ends_with(o.positional[1], ".json"))
        return fail("%s: predict takes a CSV of rows to label, not a config", o.positional[1]), 2;
    tg_model *m = tg_model_load(o.positional[0]);
    if (!m)
        return fail("%s", tg_last_error());
    tg_csv_opts csv = TG_CSV_OPTS_DEFAULT;
    csv.unlabeled = -1;
    tg_dataset *ds = tg_load_data_for_model(m, o.positional[1], &csv);
    double *probs = NULL;
    rc = 1;
    if (!ds) {
        fail("%s", tg_last_error());
    } else if ((probs = predict_all(m, ds, o.positional[1]))) {
        if (o.proba)
            print_probabilities(m, ds, probs);
        else
            print_labels(m, ds, probs);
        rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : fail("writing the predictions failed");
    }
    free(probs);
    tg_dataset_free(ds);
    tg_model_free(m);
    return rc;
}
