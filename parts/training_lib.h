/* parts/training_lib.h - one pass over a dataset in minibatches, with a step limit and a per-step
   callback: the building block of a hand-written training loop, for what nn_fit cannot do (stop
   after N steps, log every step's loss, evaluate other sets between epochs). Used by the examples
   sigmoid_mlp, lenet_overfit and lenet5_resnet18. Written on nn.h's public API so that it can move
   into nn.h unchanged (section 5, "Training", next to nn_fit); include this after common.h in a
   file that defines NN_IMPLEMENTATION.

   The only internal used is nn__fail (to set nn_last_error() like every nn.h function does).

   API (to be listed in nn.h's manual under "training"):

   typedef int (*nn_step_callback)(int64_t step, float loss, void *user);
   nn_train_epoch(model, opt, train, batch_size, rng, max_steps, on_step, user, &metrics)
       One epoch of minibatch training on train: the sample order is shuffled with rng (NULL: the
       dataset's order), the batches are batch_size samples (the last one may be smaller), each is
       one nn_train_step. Stops after max_steps steps (0: the whole epoch) or when on_step (may be
       NULL) returns non-zero; on_step gets the 1-based step number within this call and the
       batch's loss. metrics (may be NULL) receives the mean of the batch losses weighted by batch
       size, and the accuracy (percent) of the training-mode predictions made during the pass
       (labelled data only), over the samples seen (metrics->count). Errors: those of
       nn_train_step (the step that failed is not counted), NN_ERROR_ARGUMENT for a batch size
       outside [1, max_batch] of nn_compile or a negative max_steps, NN_ERROR_MEMORY. */
#ifndef NN_TRAINING_LIB_H
#define NN_TRAINING_LIB_H

#include <string.h>
#include "nn.h"

typedef int (*nn_step_callback)(int64_t step, float loss, void *user);
NNDEF nn_status nn_train_epoch(nn_model *model, nn_optimizer *opt, const nn_dataset *train, int batch_size, nn_rng *rng,
                               int max_steps, nn_step_callback on_step, void *user, nn_metrics *metrics);

#ifdef NN_IMPLEMENTATION

NNDEF nn_status nn_train_epoch(nn_model *m, nn_optimizer *opt, const nn_dataset *train, int batch_size, nn_rng *rng,
                               int max_steps, nn_step_callback on_step, void *user, nn_metrics *metrics)
{
    int *idx = NULL, *labels = NULL, first, i, correct = 0, seen = 0, steps = 0;
    float *xb = NULL, *tb = NULL;
    double loss_sum = 0.0;
    size_t size;
    nn_status st = NN_OK;
    if (metrics) memset(metrics, 0, sizeof *metrics);
    if (!m || !opt || !train || !train->x || train->count <= 0)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_train_epoch: null model, optimizer or empty dataset");
    if (!nn_params(m)) return nn__fail(NN_ERROR_STATE, "nn_train_epoch: compile the model first");
    if (nn_dataset_sample_size(train) != nn_input_size(m))
        return nn__fail(NN_ERROR_SHAPE, "nn_train_epoch: samples of %d values, the model takes %d",
                        nn_dataset_sample_size(train), nn_input_size(m));
    if (batch_size <= 0 || max_steps < 0)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_train_epoch: batch size %d and max_steps %d", batch_size, max_steps);
    if (train->targets && train->target_size <= 0)
        return nn__fail(NN_ERROR_ARGUMENT, "nn_train_epoch: targets without a target size");
    size = (size_t)nn_dataset_sample_size(train);
    idx = (int *)NN_MALLOC((size_t)train->count * sizeof(int));
    labels = (int *)NN_MALLOC((size_t)batch_size * sizeof(int));
    xb = (float *)NN_MALLOC((size_t)batch_size * size * sizeof(float));
    if (train->targets) tb = (float *)NN_MALLOC((size_t)batch_size * (size_t)train->target_size * sizeof(float));
    if (!idx || !labels || !xb || (train->targets && !tb)) {
        st = nn__fail(NN_ERROR_MEMORY, "nn_train_epoch: out of memory");
        goto done;
    }
    for (i = 0; i < train->count; i++) idx[i] = i;
    if (rng) nn_rng_shuffle(rng, idx, train->count);
    for (first = 0; first < train->count && (max_steps == 0 || steps < max_steps); first += batch_size) {
        const int n = train->count - first < batch_size ? train->count - first : batch_size, k = nn_output_size(m);
        float loss = 0.0f;
        int r;
        nn_dataset_gather(train, idx + first, n, xb, labels);
        if (tb)
            for (r = 0; r < n; r++)
                memcpy(tb + (size_t)r * train->target_size, train->targets + (size_t)idx[first + r] * train->target_size,
                       (size_t)train->target_size * sizeof(float));
        /* nn_train_step checks n against the compiled max_batch */
        st = nn_train_step(m, opt, xb, train->labels ? labels : NULL, tb, n, &loss);
        if (st != NN_OK) goto done;
        steps++;
        loss_sum += (double)loss * n;
        seen += n;
        if (train->labels) {
            const float *y = nn_output(m);
            for (r = 0; r < n; r++) {
                const float *row = y + (size_t)r * k;
                int c, best = 0;
                for (c = 1; c < k; c++)
                    if (row[c] > row[best]) best = c;
                correct += best == labels[r];
            }
        }
        if (on_step && on_step(steps, loss, user)) break;
    }
done:
    if (metrics && seen) {
        metrics->loss = loss_sum / seen;
        metrics->correct = correct;
        metrics->count = seen;
        metrics->accuracy = train->labels ? 100.0 * correct / seen : 0.0;
    }
    NN_FREE(idx);
    NN_FREE(labels);
    NN_FREE(xb);
    NN_FREE(tb);
    return st;
}

#endif /* NN_IMPLEMENTATION */
#endif /* NN_TRAINING_LIB_H */
