/*
 * The shared body of the comparisons Equal, Less, Greater, LessOrEqual and
 * GreaterOrEqual: two inputs of one dtype (float32 or int64; Equal also
 * bool), numpy broadcasting (opset 7 on; the legacy 'broadcast'/'axis'
 * attributes of opset 1 are read and refused when set), a bool output.
 * They feed masks and shape arithmetic, so they have no backward: the
 * output is not a float.
 */
#ifndef EVM_COMPARE_H
#define EVM_COMPARE_H

#include "op.h"

typedef enum evm_compare_op {
    EVM_COMPARE_EQUAL,
    EVM_COMPARE_LESS,
    EVM_COMPARE_GREATER,
    EVM_COMPARE_LESS_OR_EQUAL,
    EVM_COMPARE_GREATER_OR_EQUAL
} evm_compare_op;

evmap_status evm_compare_init(evm_node *node, evmap_error *err);

evmap_status evm_compare_infer(const evm_node *node, evm_tensor *const *in, evm_tensor *const *out,
                               evmap_error *err);

void evm_compare_forward(evm_compare_op op, evm_tensor *const *in, evm_tensor *const *out);

#endif
