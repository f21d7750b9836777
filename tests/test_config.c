/* Model configs: the values a config yields, its defaults, and one test per
 * kind of bad config, each checking that the message names the JSON path. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif

/* Configs are written with single quotes for readability; this turns them into JSON. */
static char *to_json(const char *single_quoted)
{
    char *text = strdup(single_quoted);
    cr_assert_not_null(text);
    for (char *c = text; *c; c++)
        if (*c == '\'')
            *c = '"';
    return text;
}

static tg_config *parse(const char *single_quoted, const char *base_dir)
{
    char *text = to_json(single_quoted);
    tg_config *cfg = tg_config_parse(text, base_dir);
    free(text);
    return cfg;
}

/* Parsing must fail with a message containing every fragment given. */
static void refuse(const char *single_quoted, const char *fragment, const char *fragment2)
{
    tg_config *cfg = parse(single_quoted, NULL);
    cr_assert_null(cfg, "accepted: %s", single_quoted);
    const char *error = tg_last_error();
    cr_assert(strstr(error, fragment), "\"%s\" not in the message \"%s\"", fragment, error);
    if (fragment2)
        cr_assert(strstr(error, fragment2), "\"%s\" not in the message \"%s\"", fragment2, error);
}

#define DATA "'data': {'train': 'd.csv'}"
#define MODEL "'model': {'layers': [{'type': 'linear', 'out': 3}]}"
#define OPTIM "'optimizer': {'type': 'sgd', 'lr': 0.1}"
#define MINIMAL "{" DATA ", " MODEL ", " OPTIM "}"

/* Writes text to a new file dir/name; returns its path (caller frees). */
static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    cr_assert_not_null(path);
    sprintf(path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static char *temp_dir(void)
{
    static char dir[64];
    strcpy(dir, "/tmp/tapegrad_config_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

/* ---- values and defaults ---- */

Test(config, full_csv_config_gives_every_value)
{
    tg_config *cfg = parse("{'data': {'format': 'csv', 'train': 'train.csv', 'test': 'test.csv',"
                           "          'validation_split': 0.25, 'header': false, 'label_column': 0,"
                           "          'columns': [3, 1, 2], 'standardize': false, 'shuffle_seed': 9},"
                           " 'model': {'dtype': 'float64', 'layers': [{'type': 'linear', 'out': 8, 'bias': false},"
                           "           {'type': 'tanh'}, {'type': 'linear', 'out': 2}]},"
                           " 'loss': {'type': 'cross_entropy', 'label_smoothing': 0.1, 'weight': [1, 2.5]},"
                           " 'optimizer': {'type': 'sgd', 'lr': 0.05, 'momentum': 0.9, 'dampening': 0,"
                           "               'nesterov': true, 'weight_decay': 0.001},"
                           " 'train': {'epochs': 12, 'batch_size': 64, 'clip_grad_norm': 1.5,"
                           "           'lr_schedule': {'type': 'step', 'step_size': 4, 'gamma': 0.5},"
                           "           'early_stopping': {'patience': 3, 'min_delta': 0.01}},"
                           " 'seed': 123}",
                           "/base");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_str_eq(cfg->data.format, "csv");
    cr_assert_str_eq(cfg->data.train, "/base/train.csv");
    cr_assert_str_eq(cfg->data.test, "/base/test.csv");
    cr_assert_null(cfg->data.train_labels);
    cr_assert_null(cfg->data.test_labels);
    cr_assert_eq(cfg->data.test_split, 0.0);
    cr_assert_eq(cfg->data.validation_split, 0.25);
    cr_assert_eq(cfg->data.header, 0);
    cr_assert_eq(cfg->data.label_column, 0);
    cr_assert_null(cfg->data.label_name);
    cr_assert_eq(cfg->data.n_columns, 3);
    cr_assert_eq(cfg->data.columns[0], 3);
    cr_assert_eq(cfg->data.columns[1], 1);
    cr_assert_eq(cfg->data.columns[2], 2);
    cr_assert_eq(cfg->data.standardize, 0);
    cr_assert_eq(cfg->data.shuffle_seed, 9);

    cr_assert_eq(cfg->model.dtype, TG_F64);
    cr_assert_eq(cfg->model.n_layers, 3);
    cr_assert_eq(cfg->model.layers[0].type, TG_LAYER_LINEAR);
    cr_assert_eq(cfg->model.layers[0].out, 8);
    cr_assert_eq(cfg->model.layers[0].bias, 0);
    cr_assert_eq(cfg->model.layers[1].type, TG_LAYER_TANH);
    cr_assert_eq(cfg->model.layers[2].type, TG_LAYER_LINEAR);
    cr_assert_eq(cfg->model.layers[2].out, 2);
    cr_assert_eq(cfg->model.layers[2].bias, 1);

    cr_assert_eq(cfg->loss.label_smoothing, 0.1);
    cr_assert_eq(cfg->loss.n_class_weights, 2);
    cr_assert_eq(cfg->loss.class_weights[0], 1.0);
    cr_assert_eq(cfg->loss.class_weights[1], 2.5);

    cr_assert_eq(cfg->optimizer.type, TG_OPTIM_SGD);
    cr_assert_eq(cfg->optimizer.lr, 0.05);
    cr_assert_eq(cfg->optimizer.momentum, 0.9);
    cr_assert_eq(cfg->optimizer.dampening, 0.0);
    cr_assert_eq(cfg->optimizer.nesterov, 1);
    cr_assert_eq(cfg->optimizer.weight_decay, 0.001);

    cr_assert_eq(cfg->train.epochs, 12);
    cr_assert_eq(cfg->train.batch_size, 64);
    cr_assert_eq(cfg->train.clip_grad_norm, 1.5);
    cr_assert_eq(cfg->train.schedule, TG_SCHEDULE_STEP);
    cr_assert_eq(cfg->train.step_size, 4);
    cr_assert_eq(cfg->train.gamma, 0.5);
    cr_assert_eq(cfg->train.patience, 3);
    cr_assert_eq(cfg->train.min_delta, 0.01);
    cr_assert_eq(cfg->seed, 123);
    cr_assert_null(cfg->path);
    cr_assert_not_null(strstr(cfg->json, "\"shuffle_seed\": 9"));
    tg_config_free(cfg);
}

Test(config, full_idx_config_with_adamw_and_cosine)
{
    tg_config *cfg = parse("{'data': {'format': 'idx', 'train': 'img.gz', 'train_labels': 'lab.gz',"
                           "          'test': '/abs/t-img.gz', 'test_labels': 't-lab.gz', 'scale': 0.5,"
                           "          'standardize': true, 'validation_split': 0},"
                           " 'model': {'layers': [{'type': 'linear', 'out': 10}]},"
                           " 'optimizer': {'type': 'adamw', 'lr': 0.002, 'betas': [0.8, 0.99], 'eps': 1e-6,"
                           "               'weight_decay': 0.05},"
                           " 'train': {'epochs': 4, 'lr_schedule': {'type': 'cosine', 'min_lr': 0.0001}}}",
                           "/base/");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_str_eq(cfg->data.format, "idx");
    cr_assert_str_eq(cfg->data.train, "/base/img.gz");
    cr_assert_str_eq(cfg->data.train_labels, "/base/lab.gz");
    cr_assert_str_eq(cfg->data.test, "/abs/t-img.gz");
    cr_assert_str_eq(cfg->data.test_labels, "/base/t-lab.gz");
    cr_assert_eq(cfg->data.scale, 0.5);
    cr_assert_eq(cfg->data.standardize, 1);
    cr_assert_eq(cfg->data.validation_split, 0.0);
    cr_assert_eq(cfg->optimizer.type, TG_OPTIM_ADAMW);
    cr_assert_eq(cfg->optimizer.lr, 0.002);
    cr_assert_eq(cfg->optimizer.beta1, 0.8);
    cr_assert_eq(cfg->optimizer.beta2, 0.99);
    cr_assert_eq(cfg->optimizer.eps, 1e-6);
    cr_assert_eq(cfg->optimizer.weight_decay, 0.05);
    cr_assert_eq(cfg->train.schedule, TG_SCHEDULE_COSINE);
    cr_assert_eq(cfg->train.min_lr, 0.0001);
    tg_config_free(cfg);
}

Test(config, defaults_fill_what_is_left_out)
{
    tg_config *cfg = parse(MINIMAL, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_str_eq(cfg->data.format, "csv");
    cr_assert_str_eq(cfg->data.train, "d.csv");
    cr_assert_null(cfg->data.test);
    cr_assert_eq(cfg->data.test_split, 0.2);
    cr_assert_eq(cfg->data.validation_split, 0.1);
    cr_assert_eq(cfg->data.header, -1);
    cr_assert_eq(cfg->data.label_column, -1);
    cr_assert_null(cfg->data.label_name);
    cr_assert_null(cfg->data.columns);
    cr_assert_eq(cfg->data.standardize, 1);
    cr_assert_eq(cfg->data.shuffle_seed, 42);
    cr_assert_eq(cfg->model.dtype, TG_F32);
    cr_assert_eq(cfg->model.layers[0].bias, 1);
    cr_assert_eq(cfg->loss.label_smoothing, 0.0);
    cr_assert_null(cfg->loss.class_weights);
    /* torch.optim.SGD's defaults */
    cr_assert_eq(cfg->optimizer.momentum, 0.0);
    cr_assert_eq(cfg->optimizer.dampening, 0.0);
    cr_assert_eq(cfg->optimizer.nesterov, 0);
    cr_assert_eq(cfg->optimizer.weight_decay, 0.0);
    cr_assert_eq(cfg->train.epochs, 10);
    cr_assert_eq(cfg->train.batch_size, 32);
    cr_assert_eq(cfg->train.schedule, TG_SCHEDULE_CONSTANT);
    cr_assert_eq(cfg->train.clip_grad_norm, 0.0);
    cr_assert_eq(cfg->train.patience, 0);
    cr_assert_eq(cfg->seed, 42);
    tg_config_free(cfg);
}

Test(config, optimizer_defaults_are_pytorchs)
{
    /* torch.optim.Adam / AdamW: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0 / 1e-2 */
    tg_config *adam = parse("{" DATA ", " MODEL ", 'optimizer': {'type': 'adam'}}", NULL);
    tg_config *adamw = parse("{" DATA ", " MODEL ", 'optimizer': {'type': 'adamw'}}", NULL);
    tg_config *sgd = parse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd'}}", NULL);
    cr_assert(adam && adamw && sgd, "%s", tg_last_error());
    cr_assert_eq(adam->optimizer.lr, 1e-3);
    cr_assert_eq(adam->optimizer.beta1, 0.9);
    cr_assert_eq(adam->optimizer.beta2, 0.999);
    cr_assert_eq(adam->optimizer.eps, 1e-8);
    cr_assert_eq(adam->optimizer.weight_decay, 0.0);
    cr_assert_eq(adamw->optimizer.type, TG_OPTIM_ADAMW);
    cr_assert_eq(adamw->optimizer.weight_decay, 0.01);
    cr_assert_eq(sgd->optimizer.lr, 1e-3);
    tg_config_free(adam);
    tg_config_free(adamw);
    tg_config_free(sgd);
}

Test(config, idx_data_defaults)
{
    tg_config *cfg =
        parse("{'data': {'format': 'idx', 'train': 'i', 'train_labels': 'l'}, " MODEL ", " OPTIM "}", NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_eq(cfg->data.standardize, 0);
    cr_assert_eq(cfg->data.scale, 1.0 / 255.0);
    cr_assert_eq(cfg->data.test_split, 0.2);
    cr_assert_null(cfg->data.test);
    tg_config_free(cfg);
}

Test(config, label_by_name_and_header_auto)
{
    tg_config *cfg = parse(
        "{'data': {'train': 'd.csv', 'label': 'species', 'header': 'auto'}, " MODEL ", " OPTIM ", 'seed': 7}", NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_str_eq(cfg->data.label_name, "species");
    cr_assert_eq(cfg->data.header, -1);
    cr_assert_eq(cfg->data.shuffle_seed, 7, "shuffle_seed defaults to the top-level seed");
    tg_config_free(cfg);
}

Test(config, lr_schedules_follow_pytorch)
{
    tg_config *constant = parse(MINIMAL, NULL);
    tg_config *step = parse("{" DATA ", " MODEL ", " OPTIM
                            ", 'train': {'lr_schedule': {'type': 'step', 'step_size': 3, 'gamma': 0.5}}}",
                            NULL);
    tg_config *cosine = parse("{" DATA ", " MODEL ", " OPTIM
                              ", 'train': {'epochs': 10, 'lr_schedule': {'type': 'cosine', 'min_lr': 0.001}}}",
                              NULL);
    cr_assert(constant && step && cosine, "%s", tg_last_error());
    cr_assert_eq(tg_config_lr_at(constant, 0), 0.1);
    cr_assert_eq(tg_config_lr_at(constant, 99), 0.1);
    /* StepLR: lr * gamma^floor(epoch / step_size) */
    cr_assert_float_eq(tg_config_lr_at(step, 0), 0.1, 1e-15);
    cr_assert_float_eq(tg_config_lr_at(step, 2), 0.1, 1e-15);
    cr_assert_float_eq(tg_config_lr_at(step, 3), 0.05, 1e-15);
    cr_assert_float_eq(tg_config_lr_at(step, 7), 0.025, 1e-15);
    /* CosineAnnealingLR, T_max = 10: cos(pi / 5) = (1 + sqrt 5) / 4 */
    long double cos_fifth_pi = (1 + sqrtl(5.0L)) / 4;
    cr_assert_float_eq(tg_config_lr_at(cosine, 0), 0.1, 1e-15);
    cr_assert_float_eq(tg_config_lr_at(cosine, 2), (double)(0.001L + 0.099L * (1 + cos_fifth_pi) / 2), 1e-15);
    cr_assert_float_eq(tg_config_lr_at(cosine, 5), 0.0505, 1e-15);
    cr_assert_float_eq(tg_config_lr_at(cosine, 10), 0.001, 1e-15);
    tg_config_free(constant);
    tg_config_free(step);
    tg_config_free(cosine);
}

/* ---- one test per kind of bad config ---- */

Test(config_errors, unknown_key_at_top_level)
{
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'seeed': 1}", "seeed: unknown key", "expected one of data, model");
}

Test(config_errors, unknown_key_nested)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'momentm': 0.9}}", "optimizer.momentm: unknown key",
           "momentum");
    refuse("{" DATA ", 'model': {'layers': [{'type': 'linear', 'out': 3, 'outs': 1}]}, " OPTIM "}",
           "model.layers[0].outs: unknown key", NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'early_stopping': {'patience': 1, 'delta': 0}}}",
           "train.early_stopping.delta: unknown key", "min_delta");
}

Test(config_errors, keys_are_case_exact)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'LR': 0.1}}", "optimizer.LR: unknown key", NULL);
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'SGD'}}", "optimizer.type", "\"sgd\"");
}

Test(config_errors, wrong_type)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'lr': '0.1'}}", "optimizer.lr: expected a number",
           "string");
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'nesterov': 1}}",
           "optimizer.nesterov: expected true or false", NULL);
    refuse("{'data': 'd.csv', " MODEL ", " OPTIM "}", "data: expected an object", NULL);
    refuse("{" DATA ", 'model': {'layers': {'type': 'linear'}}, " OPTIM "}", "model.layers: expected an array", NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'seed': null}", "seed: expected an integer, got null", NULL);
    refuse("[1, 2]", "top level must be a JSON object", NULL);
}

Test(config_errors, missing_required_field)
{
    refuse("{" DATA ", 'model': {}, " OPTIM "}", "model.layers: required", NULL);
    refuse("{" MODEL ", " OPTIM "}", "data: required", NULL);
    refuse("{" DATA ", " MODEL "}", "optimizer: required", NULL);
    refuse("{" DATA ", " MODEL ", 'optimizer': {'lr': 0.1}}", "optimizer.type: required", NULL);
    refuse("{'data': {}, " MODEL ", " OPTIM "}", "data.train: required", NULL);
    refuse("{" DATA ", 'model': {'layers': [{'type': 'linear'}]}, " OPTIM "}", "model.layers[0].out: required", NULL);
    refuse("{'data': {'format': 'idx', 'train': 'i'}, " MODEL ", " OPTIM "}", "data.train_labels: required", NULL);
}

Test(config_errors, negative_lr)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'lr': -0.1}}", "optimizer.lr: must be > 0, got -0.1",
           NULL);
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'adam', 'lr': 0}}", "optimizer.lr: must be > 0", NULL);
}

Test(config_errors, other_values_out_of_range)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'adam', 'betas': [0.9, 1.0]}}",
           "optimizer.betas[1]: must be in [0, 1), got 1", NULL);
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'adam', 'betas': [0.9]}}",
           "optimizer.betas: expected an array of 2 numbers", NULL);
    refuse("{'data': {'train': 'd.csv', 'validation_split': 1}, " MODEL ", " OPTIM "}", "data.validation_split",
           "[0, 1)");
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'batch_size': 0}}", "train.batch_size: must be >= 1", NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'seed': -1}", "seed: must be >= 0", NULL);
    refuse("{" DATA ", " MODEL ", 'loss': {'label_smoothing': 1}, " OPTIM "}", "loss.label_smoothing", NULL);
    refuse("{" DATA ", " MODEL ", 'loss': {'weight': [1, -1, 1]}, " OPTIM "}", "loss.weight[1]: must be >= 0", NULL);
    refuse("{" DATA ", " MODEL ", 'loss': {'weight': [0, 0, 0]}, " OPTIM "}", "loss.weight: every weight is 0", NULL);
    refuse("{" DATA ", " MODEL ", 'loss': {'weight': [1, 1]}, " OPTIM "}", "loss.weight: has 2 weights", "3 classes");
    refuse("{" DATA ", 'model': {'layers': [{'type': 'linear', 'out': 0}]}, " OPTIM "}",
           "model.layers[0].out: must be >= 1", NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'lr_schedule': {'type': 'cosine', 'min_lr': 0.5}}}",
           "train.lr_schedule.min_lr: must be at most optimizer.lr", NULL);
}

Test(config_errors, zero_layers)
{
    refuse("{" DATA ", 'model': {'layers': []}, " OPTIM "}", "model.layers: needs at least one layer", NULL);
}

Test(config_errors, last_layer_not_linear)
{
    refuse("{" DATA ", 'model': {'layers': [{'type': 'linear', 'out': 4}, {'type': 'relu'}]}, " OPTIM "}",
           "model.layers[1]: the last layer must be linear", "relu");
    refuse("{" DATA ", 'model': {'layers': [{'type': 'relu', 'out': 4}, {'type': 'linear', 'out': 2}]}, " OPTIM "}",
           "model.layers[0].out: unknown key for type \"relu\"", NULL);
}

Test(config_errors, label_column_values_and_types)
{
    refuse("{'data': {'train': 'd.csv', 'label_column': 'digit'}, " MODEL ", " OPTIM "}",
           "data.label_column: expected an integer", "data.label");
    refuse("{'data': {'train': 'd.csv', 'label_column': 1.5}, " MODEL ", " OPTIM "}",
           "data.label_column: expected an integer, got 1.5", NULL);
    refuse("{'data': {'train': 'd.csv', 'label_column': 1e300}, " MODEL ", " OPTIM "}",
           "data.label_column: must be at most 9007199254740992", NULL);
    refuse("{'data': {'train': 'd.csv', 'label_column': 0, 'label': 'y'}, " MODEL ", " OPTIM "}",
           "data.label: cannot be used together with data.label_column", NULL);
    refuse("{'data': {'train': 'd.csv', 'label_column': 2, 'columns': [0, 2]}, " MODEL ", " OPTIM "}",
           "data.columns[1]: column 2 is the label column", NULL);
    refuse("{'data': {'train': 'd.csv', 'columns': [0, 4, 1, 4]}, " MODEL ", " OPTIM "}",
           "data.columns[3]: column 4 is listed twice", NULL);
    refuse("{'data': {'train': 'd.csv', 'columns': [-1]}, " MODEL ", " OPTIM "}", "data.columns[0]: must be >= 0",
           NULL);
    refuse("{'data': {'train': 'd.csv', 'header': 'yes'}, " MODEL ", " OPTIM "}", "data.header",
           "true, false or \"auto\"");
}

Test(config_errors, test_and_test_split_both)
{
    refuse("{'data': {'train': 'a.csv', 'test': 'b.csv', 'test_split': 0.2}, " MODEL ", " OPTIM "}",
           "data.test_split: cannot be used together with data.test", NULL);
}

Test(config_errors, keys_of_the_other_data_format)
{
    refuse("{'data': {'train': 'a.csv', 'scale': 0.5}, " MODEL ", " OPTIM "}",
           "data.scale: unknown key for format \"csv\"", NULL);
    refuse("{'data': {'format': 'idx', 'train': 'i', 'train_labels': 'l', 'label': 'y'}, " MODEL ", " OPTIM "}",
           "data.label: unknown key for format \"idx\"", NULL);
    refuse("{'data': {'format': 'idx', 'train': 'i', 'train_labels': 'l', 'test_labels': 't'}, " MODEL ", " OPTIM "}",
           "data.test_labels: given without data.test", NULL);
}

Test(config_errors, duplicate_key)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'lr': 0.1, 'lr': 0.2}}", "optimizer.lr: duplicate key",
           NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", " OPTIM "}", "optimizer: duplicate key", NULL);
}

Test(config_errors, trailing_garbage)
{
    refuse(MINIMAL " x", "unexpected text after the JSON value", "line 1");
    refuse(MINIMAL "\n}", "unexpected text after the JSON value at line 2, column 1", NULL);
}

Test(config_errors, invalid_json_names_line_and_column)
{
    refuse("{\n  'data': {'train': 'd.csv'},\n  'model': {'layers': [}\n}", "invalid JSON at line 3, column 24", NULL);
    refuse("", "no JSON value", NULL);
    refuse("  \n ", "no JSON value", NULL);
}

Test(config_errors, non_integral_epochs)
{
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'epochs': 2.5}}", "train.epochs: expected an integer, got 2.5",
           NULL);
}

Test(config_errors, huge_integer)
{
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'epochs': 1e10}}", "train.epochs: must be at most 2147483647",
           NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'seed': 18446744073709551615}", "seed: must be at most 9007199254740992",
           "not exact");
}

Test(config_errors, non_finite_number)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'lr': 1e999}}", "optimizer.lr: must be a finite number",
           NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'epochs': -1e999}}", "train.epochs: expected an integer", NULL);
}

Test(config_errors, bad_schedule_type)
{
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'lr_schedule': {'type': 'exponential'}}}",
           "train.lr_schedule.type: expected one of \"constant\", \"step\", \"cosine\"", "exponential");
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'lr_schedule': {'type': 'step'}}}",
           "train.lr_schedule.step_size: required", NULL);
    refuse("{" DATA ", " MODEL ", " OPTIM ", 'train': {'lr_schedule': {'type': 'cosine', 'gamma': 0.1}}}",
           "train.lr_schedule.gamma: unknown key for type \"cosine\"", NULL);
}

Test(config_errors, momentum_key_with_adam)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'adam', 'momentum': 0.9}}",
           "optimizer.momentum: unknown key for type \"adam\"", "betas");
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'betas': [0.9, 0.99]}}",
           "optimizer.betas: unknown key for type \"sgd\"", NULL);
}

Test(config_errors, nesterov_without_momentum)
{
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'nesterov': true}}",
           "optimizer.nesterov: requires momentum > 0 and dampening 0", NULL);
    refuse("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'nesterov': true, 'momentum': 0.9, 'dampening': 0.1}}",
           "optimizer.nesterov", NULL);
}

Test(config_errors, early_stopping_without_validation)
{
    refuse("{'data': {'train': 'd.csv', 'validation_split': 0}, " MODEL ", " OPTIM
           ", 'train': {'early_stopping': {'patience': 2}}}",
           "train.early_stopping: needs a validation set", NULL);
}

/* ---- files ---- */

Test(config_files, file_not_found)
{
    cr_assert_null(tg_config_load("/nonexistent/tapegrad/config.json"));
    cr_assert(strstr(tg_last_error(), "/nonexistent/tapegrad/config.json"), "%s", tg_last_error());
    cr_assert(strstr(tg_last_error(), "No such file"), "%s", tg_last_error());
}

Test(config_files, directory_empty_file_and_nul_byte)
{
    char *dir = temp_dir();
    cr_assert_null(tg_config_load(dir));
    cr_assert(strstr(tg_last_error(), dir) && strstr(tg_last_error(), "is a directory"), "%s", tg_last_error());
    char *empty = write_file(dir, "empty.json", "");
    cr_assert_null(tg_config_load(empty));
    cr_assert(strstr(tg_last_error(), empty) && strstr(tg_last_error(), "empty"), "%s", tg_last_error());
    char *nul = write_file(dir, "nul.json", "");
    FILE *f = fopen(nul, "wb");
    cr_assert_not_null(f);
    fwrite("{}\0{}", 1, 5, f);
    fclose(f);
    cr_assert_null(tg_config_load(nul));
    cr_assert(strstr(tg_last_error(), nul) && strstr(tg_last_error(), "NUL byte at offset 2"), "%s", tg_last_error());
    cr_assert_null(tg_config_load(""));
    cr_assert(strstr(tg_last_error(), "empty"), "%s", tg_last_error());
    remove(empty);
    remove(nul);
    free(empty);
    free(nul);
    rmdir(dir);
}

Test(config_files, errors_from_a_file_name_file_and_path)
{
    char *dir = temp_dir();
    char *text = to_json("{" DATA ", " MODEL ", 'optimizer': {'type': 'sgd', 'lr': -1}}");
    char *path = write_file(dir, "bad.json", text);
    cr_assert_null(tg_config_load(path));
    char expected[256];
    snprintf(expected, sizeof expected, "%s: optimizer.lr: must be > 0", path);
    cr_assert(strstr(tg_last_error(), expected), "%s", tg_last_error());
    remove(path);
    free(path);
    free(text);
    rmdir(dir);
}

Test(config_files, relative_paths_resolve_against_the_config_folder)
{
    char *dir = temp_dir();
    char *text = to_json("{'data': {'format': 'idx', 'train': 'sub/img.gz', 'train_labels': '../lab.gz',"
                         " 'test': '/abs/t.gz', 'test_labels': 't-lab.gz'}, " MODEL ", " OPTIM "}");
    char *path = write_file(dir, "cfg.json", text);
    tg_config *cfg = tg_config_load(path);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    char expected[256];
    snprintf(expected, sizeof expected, "%s/sub/img.gz", dir);
    cr_assert_str_eq(cfg->data.train, expected);
    snprintf(expected, sizeof expected, "%s/../lab.gz", dir);
    cr_assert_str_eq(cfg->data.train_labels, expected);
    cr_assert_str_eq(cfg->data.test, "/abs/t.gz");
    snprintf(expected, sizeof expected, "%s/t-lab.gz", dir);
    cr_assert_str_eq(cfg->data.test_labels, expected);
    cr_assert_str_eq(cfg->path, path);
    cr_assert_str_eq(cfg->json, text, "the text is kept as read");
    tg_config_free(cfg);

    /* tg_config_parse: against base_dir, with or without its final slash; NULL keeps them as written */
    tg_config *with_base = parse("{'data': {'train': 'x/d.csv'}, " MODEL ", " OPTIM "}", "/data/");
    tg_config *without = parse("{'data': {'train': 'x/d.csv'}, " MODEL ", " OPTIM "}", NULL);
    cr_assert(with_base && without, "%s", tg_last_error());
    cr_assert_str_eq(with_base->data.train, "/data/x/d.csv");
    cr_assert_str_eq(without->data.train, "x/d.csv");
    tg_config_free(with_base);
    tg_config_free(without);
    remove(path);
    free(path);
    free(text);
    rmdir(dir);
}

Test(config_files, every_example_config_loads)
{
    static const char *const names[] = { "digits", "iris", "iris_mlp", "fashion_mnist", "fashion_mnist_mlp" };
    tg_config *cfg[5];
    for (int i = 0; i < 5; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/examples/%s.json", TAPEGRAD_SOURCE_DIR, names[i]);
        cfg[i] = tg_config_load(path);
        cr_assert_not_null(cfg[i], "%s", tg_last_error());
    }
    char expected[512];
    snprintf(expected, sizeof expected, "%s/examples/../data/digits.csv", TAPEGRAD_SOURCE_DIR);
    cr_assert_str_eq(cfg[0]->data.train, expected);
    cr_assert_str_eq(cfg[0]->data.label_name, "digit");
    cr_assert_eq(cfg[0]->model.n_layers, 1);
    cr_assert_eq(cfg[0]->model.layers[0].out, 10);
    cr_assert_eq(cfg[1]->model.layers[0].out, 3);
    cr_assert_eq(cfg[2]->model.n_layers, 3);
    cr_assert_eq(cfg[2]->optimizer.type, TG_OPTIM_ADAM);
    cr_assert_str_eq(cfg[3]->data.format, "idx");
    cr_assert_str_eq(cfg[3]->data.train, "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    cr_assert_str_eq(cfg[3]->data.test_labels, "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
    cr_assert_eq(cfg[3]->train.batch_size, 128);
    cr_assert_eq(cfg[4]->model.layers[0].out, 256);
    for (int i = 0; i < 5; i++)
        tg_config_free(cfg[i]);
}

Test(config_files, the_docs_example_parses)
{
    char path[512];
    snprintf(path, sizeof path, "%s/docs/config.md", TAPEGRAD_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    char *start = strstr(doc, "```json\n");
    cr_assert_not_null(start, "no ```json block in %s", path);
    start += strlen("```json\n");
    char *end = strstr(start, "```");
    cr_assert_not_null(end);
    *end = '\0';
    tg_config *cfg = tg_config_parse(start, "/docs");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_eq(cfg->train.schedule, TG_SCHEDULE_COSINE);
    cr_assert_eq(cfg->optimizer.nesterov, 1);
    tg_config_free(cfg);
}

/* ---- the allocator ---- */

static long live_blocks, allocations_left;

static void *counting_malloc(size_t bytes)
{
    if (allocations_left == 0)
        return NULL;
    allocations_left--;
    void *p = malloc(bytes);
    live_blocks += p != NULL;
    return p;
}

static void *counting_realloc(void *p, size_t bytes)
{
    if (allocations_left == 0)
        return NULL;
    allocations_left--;
    void *q = realloc(p, bytes);
    live_blocks += q && !p;
    return q;
}

static void counting_free(void *p)
{
    live_blocks -= p != NULL;
    free(p);
}

Test(config_memory, every_allocation_failure_is_reported_and_leaks_nothing)
{
    char *dir = temp_dir();
    char *text = to_json("{'data': {'train': 'd.csv', 'columns': [0, 1, 2], 'label_column': 3}, 'model': {'layers':"
                         " [{'type': 'linear', 'out': 4}, {'type': 'relu'}, {'type': 'linear', 'out': 3}]},"
                         " 'loss': {'weight': [1, 2, 3]}, 'optimizer': {'type': 'adam', 'betas': [0.8, 0.9]},"
                         " 'train': {'lr_schedule': {'type': 'step', 'step_size': 2}}}");
    char *path = write_file(dir, "cfg.json", text);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    for (int from_file = 0; from_file < 2; from_file++) {
        long used = -1;
        for (long budget = 0; budget < 10000 && used < 0; budget++) {
            allocations_left = budget;
            tg_config *cfg = from_file ? tg_config_load(path) : tg_config_parse(text, NULL);
            if (cfg) {
                used = budget;
                cr_assert_eq(cfg->loss.n_class_weights, 3);
                tg_config_free(cfg);
            } else {
                cr_assert(strstr(tg_last_error(), "out of memory"), "budget %ld: %s", budget, tg_last_error());
            }
            cr_assert_eq(live_blocks, 0, "budget %ld: %ld blocks leaked", budget, live_blocks);
        }
        /* cJSON's nodes are among the counted allocations: far more than the config's own dozen */
        cr_assert_gt(used, 40, "only %ld allocations: cJSON does not use the library's allocator", used);
    }
    tg_set_allocator(NULL, NULL, NULL);
    remove(path);
    free(path);
    free(text);
    rmdir(dir);
}
