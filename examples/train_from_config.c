/* The C API's version of `tapegrad train`: load a JSON config, train the model
 * it describes, score the test set, save a checkpoint PyTorch can load.
 * usage: train_from_config CONFIG.json [MODEL.safetensors] */
#include <tapegrad.h>

#include <stdio.h>

static int print_epoch(const tg_progress *p, void *ctx)
{
    (void)ctx;
    if (p->finished)
        printf("epoch %2d/%d  train loss %.4f  val acc %.4f\n", p->epoch, p->epochs, p->train_loss, p->val_accuracy);
    return 0; /* non-zero would stop training */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CONFIG.json [MODEL.safetensors]\n", argv[0]);
        return 2;
    }
    const char *out = argc > 2 ? argv[2] : "model.safetensors";
    int status = 1;
    tg_eval ev = { 0 };
    tg_training *run = NULL;

    tg_config *cfg = tg_config_load(argv[1]);
    if (!cfg)
        goto done;
    run = tg_train_config(cfg, print_epoch, NULL);
    if (!run || tg_evaluate(run->model, run->test, &ev) != 0)
        goto done;
    printf("test accuracy %.4f on %lld rows\n", ev.accuracy, (long long)ev.rows);
    if (tg_model_save(run->model, out) != 0)
        goto done;
    printf("saved %s\n", out);
    status = 0;

done:
    if (status)
        fprintf(stderr, "error: %s\n", tg_last_error());
    tg_eval_clear(&ev);
    tg_training_free(run);
    tg_config_free(cfg);
    return status;
}
