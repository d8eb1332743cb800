/* parts/mpi_lib.h - what nn_mpi.h (and any other companion header) needs from nn.h but cannot
   reach through the public API. Written against nn.h's internals (nn__fail, struct nn_model) so
   that it can move into nn.h unchanged; until then include it after nn.h in the file that defines
   NN_IMPLEMENTATION. nn_mpi.h works without it and uses it when NN_HAVE_COMPANION_API is defined.

   API (to be listed in nn.h's manual: nn_set_error under "errors", the getters under "training"):

   nn_status nn_set_error(nn_status status, const char *format, ...)
       Sets nn_last_error() (this thread's message) and returns status, so that code built on nn.h
       reports its failures the way nn.h does. Today nn_mpi.h keeps a second message buffer,
       nn_mpi_last_error(), because nn__fail is static.
   nn_grad_reduction nn_get_grad_reduction(const nn_model *model)
       NN_GRAD_MEAN or NN_GRAD_SUM, as set by nn_set_grad_reduction (NN_GRAD_MEAN for NULL).
       nn_mpi_train_step must know it: with the mean it weights each rank's gradient by
       local_count / global_count before the sum, with the sum it must not. Without the getter
       nn_mpi.h documents that the model must keep the default (NN_GRAD_MEAN).
   int nn_get_nonfinite_policy(const nn_model *model)
       The keep_going flag of nn_set_nonfinite_policy (0 for NULL). Without it nn_mpi_train_step
       always skips a non-finite update (on every rank alike), whatever the model's policy.

   Not here because it needs a change inside nn_backward (see docs/scaling.md, "what to change"):
   a callback when a layer's parameter gradients are final, so that the allreduce of the last
   layers' gradients can start (MPI_Iallreduce per bucket) while the backward pass goes on:
       typedef void (*nn_grad_ready_fn)(nn_model *model, size_t offset, size_t count, void *user);
       void nn_set_grad_ready_callback(nn_model *model, nn_grad_ready_fn fn, void *user);
   called from nn_backward after each layer with parameters, with the slice [offset, offset+count)
   of nn_grads that is now final (layers finish in reverse build order, and the flat buffer is laid
   out in build order, so the finished part is always a suffix of the buffer: buckets are
   contiguous). */
#ifndef NN_MPI_LIB_H
#define NN_MPI_LIB_H

#include "nn.h"

#define NN_HAVE_COMPANION_API 1

#ifdef __cplusplus
extern "C" {
#endif
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
NNDEF nn_status nn_set_error(nn_status status, const char *format, ...);
NNDEF nn_grad_reduction nn_get_grad_reduction(const nn_model *model);
NNDEF int nn_get_nonfinite_policy(const nn_model *model);
#ifdef __cplusplus
}
#endif

#ifdef NN_IMPLEMENTATION
#include <stdarg.h>
#include <stdio.h>

NNDEF nn_status nn_set_error(nn_status status, const char *format, ...)
{
    char text[sizeof nn__error_text];
    va_list args;
    text[0] = 0;
    if (format) {
        va_start(args, format);
        vsnprintf(text, sizeof text, format, args);
        va_end(args);
    }
    return nn__fail(status, "%s", text);
}

NNDEF nn_grad_reduction nn_get_grad_reduction(const nn_model *m) { return m ? m->reduction : NN_GRAD_MEAN; }

NNDEF int nn_get_nonfinite_policy(const nn_model *m) { return m ? m->keep_going : 0; }

#endif /* NN_IMPLEMENTATION */
#endif /* NN_MPI_LIB_H */
