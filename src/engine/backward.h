/*
 * Backward passes over a plan: the gradient of one scalar per image (seeded
 * by the caller at any value, usually the logits) with respect to any
 * earlier value (usually the input image), by vector-Jacobian products of
 * the operators in reverse step order (DESIGN.md 1.4).
 *
 * Made once per plan, seed and target value: the steps on a path between
 * them, one gradient buffer per value on such a path and the scratch for
 * values that several steps feed. Running cannot fail or allocate. It reads
 * the activations of the plan's last forward run, which must still be there.
 */
#ifndef EVM_BACKWARD_H
#define EVM_BACKWARD_H

#include "plan.h"

typedef struct evm_backward evm_backward;

/* How Relu passes gradients back: exactly, or as guided backpropagation
 * (only positive gradients through positive inputs; Springenberg et al.). */
typedef enum evm_backward_mode { EVM_BACKWARD_EXACT, EVM_BACKWARD_GUIDED } evm_backward_mode;

/* Gradient of values seed_value holds with respect to wrt_value. Fails with
 * a message naming the layers when wrt is constant, seed does not depend on
 * wrt, or the path crosses an operator input without a gradient. */
evmap_status evm_backward_create(evm_plan *plan, int seed_value, int wrt_value, evm_backward **out,
                                 evmap_error *err);
void evm_backward_free(evm_backward *b);

/* The buffer the caller fills with d(scalar)/d(seed value) before a run. */
evm_tensor *evm_backward_seed(evm_backward *b);

/* The gradient with respect to wrt after a run (wrt's shape). */
const evm_tensor *evm_backward_result(const evm_backward *b);

/* Runs the backward steps; stop (may be NULL) is asked between steps and a
 * non-zero answer returns false with the result undefined. */
bool evm_backward_run(evm_backward *b, evm_backward_mode mode, int (*stop)(void *user), void *user);

/* Scratch bytes the backward pass holds (gradients, workspace). */
size_t evm_backward_bytes(const evm_backward *b);

#endif
