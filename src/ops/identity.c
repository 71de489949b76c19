/* Identity: y = x, for float32 and int64 (exporters put it in shape chains
 * too). Forward copies, since outputs never alias inputs. */
#include <string.h>

#include "op.h"

static evmap_status identity_infer(const evm_node *node, evm_tensor *const *in,
                                   evm_tensor *const *out, evmap_error *err) {
    if (evm_dtype_size(in[0]->dtype) == 0)
        return evm_node_fail(err, node, EVMAP_ERR_UNSUPPORTED,
                             "input has data type %s; only float32, int64 and bool are supported",
                             evm_dtype_name(in[0]->dtype));
    out[0]->dtype = in[0]->dtype;
    return evm_tensor_set_shape(out[0], in[0]->rank, in[0]->dims, err);
}

const evm_op_def evm_op_identity = {
    .name = "Identity",
    .min_inputs = 1,
    .max_inputs = 1,
    .infer = identity_infer,
    .forward = evm_op_forward_copy,
    .elementwise = true,
    .grad_inputs = 1u << 0,
    .backward = evm_op_backward_copy,
    .kinks = EVM_KINKS_NONE,
};
