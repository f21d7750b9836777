/* Messages of issue 10, item 7, that were unclear: each names what is wrong in the user's terms. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

Test(messages, load_data_for_model_with_a_null_path_says_so)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 3, 1 } };
    tg_model *m = tg_model_new(TG_F32, 4, 1, layers, &rng);
    tg_clear_error();
    cr_assert_null(tg_load_data_for_model(m, NULL, NULL));
    /* was "(null): cannot open: Bad address" */
    cr_assert_str_eq(tg_last_error(), "load data for a model: the data file's path is NULL");
    cr_assert_null(tg_load_data_for_model(NULL, TAPEGRAD_SOURCE_DIR "/data/iris.csv", NULL));
    cr_assert_str_eq(tg_last_error(), "load data for a model: the model is NULL");
    tg_model_free(m);
}

/* The command's stderr and stdout together, and its exit status. */
static char *run(const char *command, int *status)
{
    FILE *p = popen(command, "r");
    cr_assert_not_null(p);
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len = fread(text, 1, cap - 1, p);
    text[len] = '\0';
    *status = pclose(p);
    return text;
}

Test(messages, an_empty_test_set_says_the_split_rounded_to_no_row)
{
    char *dir = make_temp_dir("tapegrad-messages"), *csv = join_path(dir, "one.csv"), *cfg = join_path(dir, "one.json"),
         *out = join_path(dir, "one.safetensors");
    const char data[] = "a,b,label\n1,2,x\n";
    write_bytes(csv, data, sizeof data - 1);
    const char config[] =
        "{\"data\": {\"train\": \"one.csv\", \"test_split\": 0.4}, \"model\": {\"layers\": [{\"type\": "
        "\"linear\", \"out\": 1}]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"train\": "
        "{\"epochs\": 1, \"batch_size\": 4}, \"seed\": 1}";
    write_bytes(cfg, config, sizeof config - 1);
    char command[1024];
    snprintf(command, sizeof command, "'%s' train '%s' --quiet --out '%s' 2>&1", TAPEGRAD_CLI, cfg, out);
    int status;
    char *text = run(command, &status);
    cr_assert_neq(status, 0);
    /* was "set data.test or a data.test_split > 0" while it was 0.4 */
    cr_assert(strstr(text, "the test set is empty: data.test_split 0.4 of 1 row rounds to 0 rows"), "%s", text);
    free(text);
    unlink(out);
    unlink(csv);
    unlink(cfg);
    rmdir(dir);
    free(csv);
    free(cfg);
    free(out);
    free(dir);
}
