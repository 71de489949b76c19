/* The efficient method's automatic split layer (efficient_split.c). */
#ifndef EVM_EFFICIENT_SPLIT_H
#define EVM_EFFICIENT_SPLIT_H

#include "evmap.h"

/* Value index of the split --split auto takes for model (its graph input
 * when the rule finds no layer). */
evmap_status evm_efficient_auto_split(const evmap_model *model, int *value, evmap_error *err);

#endif
