/* Printing results, shared by train and eval: the per-class report with its
 * confusion matrix, the metrics lines, and their JSON forms. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The width of the label column: the longest label, 5 to 14 characters. */
static int label_width(const tg_model *m, int64_t classes)
{
    int width = 5;
    char buf[32];
    for (int64_t k = 0; k < classes; k++) {
        int len = (int)strlen(label_of(m, k, buf, sizeof buf));
        width = len > width ? len : width;
    }
    return width > 14 ? 14 : width;
}

/* A blue background whose depth follows the cell's share of its row. */
static const char *shade(double share)
{
    static const char *codes[] = {
        "", "\033[48;5;195m", "\033[48;5;153m", "\033[48;5;111m", "\033[48;5;69m", "\033[48;5;27m\033[97m"
    };
    if (!(share > 0))
        return codes[0];
    int level = 1 + (int)(share * 4.999);
    return codes[level > 5 ? 5 : level];
}

/* Class k's precision, recall and support (true rows) from the confusion matrix. */
typedef struct {
    double precision, recall;
    int64_t support;
} class_stats;

static class_stats stats_of(const tg_eval *ev, int64_t k)
{
    int64_t c = ev->classes, predicted = 0, actual = 0, hit = ev->confusion[k * c + k];
    for (int64_t j = 0; j < c; j++) {
        predicted += ev->confusion[j * c + k];
        actual += ev->confusion[k * c + j];
    }
    return (class_stats){ predicted ? (double)hit / (double)predicted : 0.0,
                          actual ? (double)hit / (double)actual : 0.0, actual };
}

void print_report(FILE *f, const tg_model *m, const tg_eval *ev, bool colour)
{
    int64_t c = ev->classes;
    int width = label_width(m, c);
    char buf[32];
    fprintf(f, "\nconfusion matrix (rows: true class, columns: predicted)\n%*s", width + 2, "");
    for (int64_t k = 0; k < c; k++)
        fprintf(f, " %*.*s", width, width, label_of(m, k, buf, sizeof buf));
    fputc('\n', f);
    for (int64_t r = 0; r < c; r++) {
        int64_t row_total = 0;
        for (int64_t k = 0; k < c; k++)
            row_total += ev->confusion[r * c + k];
        fprintf(f, "  %*.*s", width, width, label_of(m, r, buf, sizeof buf));
        for (int64_t k = 0; k < c; k++) {
            int64_t n = ev->confusion[r * c + k];
            const char *on = colour ? shade(row_total ? (double)n / (double)row_total : 0) : "";
            fprintf(f, " %s%*lld%s", on, width, (long long)n, colour && *on ? "\033[0m" : "");
        }
        fputc('\n', f);
    }
    fprintf(f, "\n  %*s %9s %9s %9s\n", width, "class", "precision", "recall", "support");
    for (int64_t k = 0; k < c; k++) {
        class_stats st = stats_of(ev, k);
        fprintf(f, "  %*.*s %9.4f %9.4f %9lld\n", width, width, label_of(m, k, buf, sizeof buf), st.precision,
                st.recall, (long long)st.support);
    }
}

/* The lines eval prints after the confusion matrix and the precision / recall table. */
void print_metrics(FILE *f, const tg_model *m, const tg_metrics *mt)
{
    int width = label_width(m, mt->classes);
    char buf[32];
    fprintf(f, "\n  %*s %9s\n", width, "class", "f1");
    for (int64_t k = 0; k < mt->classes; k++)
        fprintf(f, "  %*.*s %9.4f\n", width, width, label_of(m, k, buf, sizeof buf), mt->f1[k]);
    fprintf(f, "\n  %*s %9s %9s %9s\n", width < 8 ? 8 : width, "average", "precision", "recall", "f1");
    fprintf(f, "  %*s %9.4f %9.4f %9.4f\n", width < 8 ? 8 : width, "macro", mt->precision_macro, mt->recall_macro,
            mt->f1_macro);
    fprintf(f, "  %*s %9.4f %9.4f %9.4f\n", width < 8 ? 8 : width, "weighted", mt->precision_weighted,
            mt->recall_weighted, mt->f1_weighted);
    fprintf(f, "\nbalanced accuracy %.4f  log-loss %.4f  Brier score %.4f\n", mt->balanced_accuracy, mt->log_loss,
            mt->brier);
    if (mt->classes == 2)
        fprintf(f, "ROC-AUC %.4f  average precision %.4f  (positive class %s)\n", mt->roc_auc, mt->average_precision,
                label_of(m, mt->positive, buf, sizeof buf));
    else
        fprintf(f, "ROC-AUC %.4f  average precision %.4f  (one-vs-rest, macro)\n", mt->roc_auc, mt->average_precision);
}

static void add_averages(cJSON *o, const char *name, double precision, double recall, double f1)
{
    cJSON *avg = cJSON_AddObjectToObject(o, name);
    cJSON_AddNumberToObject(avg, "precision", precision);
    cJSON_AddNumberToObject(avg, "recall", recall);
    cJSON_AddNumberToObject(avg, "f1", f1);
}

/* The keys eval --json adds to eval_json's object (NaN prints as null). */
void add_metrics_json(cJSON *o, const tg_model *m, const tg_metrics *mt)
{
    char buf[32];
    cJSON_AddNumberToObject(o, "balanced_accuracy", mt->balanced_accuracy);
    cJSON_AddNumberToObject(o, "log_loss", mt->log_loss);
    cJSON_AddNumberToObject(o, "brier", mt->brier);
    cJSON_AddNumberToObject(o, "roc_auc", mt->roc_auc);
    cJSON_AddNumberToObject(o, "average_precision", mt->average_precision);
    if (mt->classes == 2)
        cJSON_AddStringToObject(o, "positive_label", label_of(m, mt->positive, buf, sizeof buf));
    add_averages(o, "macro", mt->precision_macro, mt->recall_macro, mt->f1_macro);
    add_averages(o, "weighted", mt->precision_weighted, mt->recall_weighted, mt->f1_weighted);
    cJSON *per_class = cJSON_GetObjectItem(o, "per_class");
    for (int64_t k = 0; k < mt->classes; k++)
        cJSON_AddNumberToObject(cJSON_GetArrayItem(per_class, (int)k), "f1", mt->f1[k]);
}

cJSON *eval_json(const tg_model *m, const tg_eval *ev)
{
    cJSON *o = cJSON_CreateObject();
    char buf[32];
    cJSON_AddNumberToObject(o, "rows", (double)ev->rows);
    cJSON_AddNumberToObject(o, "accuracy", ev->accuracy);
    cJSON_AddNumberToObject(o, "loss", ev->loss);
    cJSON *labels = cJSON_AddArrayToObject(o, "labels");
    cJSON *confusion = cJSON_AddArrayToObject(o, "confusion");
    cJSON *per_class = cJSON_AddArrayToObject(o, "per_class");
    for (int64_t r = 0; r < ev->classes; r++) {
        cJSON_AddItemToArray(labels, cJSON_CreateString(label_of(m, r, buf, sizeof buf)));
        cJSON *row = cJSON_CreateArray();
        for (int64_t k = 0; k < ev->classes; k++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)ev->confusion[r * ev->classes + k]));
        cJSON_AddItemToArray(confusion, row);
        class_stats st = stats_of(ev, r);
        cJSON *cls = cJSON_CreateObject();
        cJSON_AddStringToObject(cls, "label", label_of(m, r, buf, sizeof buf));
        cJSON_AddNumberToObject(cls, "precision", st.precision);
        cJSON_AddNumberToObject(cls, "recall", st.recall);
        cJSON_AddNumberToObject(cls, "support", (double)st.support);
        cJSON_AddItemToArray(per_class, cls);
    }
    return o;
}
