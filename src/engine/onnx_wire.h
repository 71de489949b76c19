/*
 * A small reader of the protobuf wire format, enough to take the weights out
 * of a serialized ONNX ModelProto before protobuf-c sees it.
 *
 * evm_wire_strip_model finds, in ModelProto field 7 (graph) -> GraphProto
 * field 5 (initializer, a repeated TensorProto) -> TensorProto field 9
 * (raw_data), the raw_data of every initializer, copies each payload into a
 * malloc'd buffer of its own and builds a copy of the message with those
 * fields removed (the enclosing lengths re-encoded). The copy unpacks with
 * protobuf-c into the same message as the original, less the initializers'
 * raw_data, which the caller attaches back from the payloads in order.
 *
 * The input is untrusted: every varint and length is checked against the
 * buffer, groups (wire types 3 and 4) and unknown wire types are rejected.
 * Only the three levels named above are parsed; everything else is copied
 * as it is and left to protobuf-c.
 */
#ifndef EVM_ONNX_WIRE_H
#define EVM_ONNX_WIRE_H

#include <stddef.h>
#include <stdint.h>

typedef enum evm_wire_status {
    EVM_WIRE_OK = 0,
    EVM_WIRE_MALFORMED,   /* not valid wire format at a level that was parsed */
    EVM_WIRE_UNSUPPORTED, /* valid, but not a layout the stripper handles (graph field repeated) */
    EVM_WIRE_NO_MEMORY,
} evm_wire_status;

enum {
    EVM_WIRE_VARINT = 0,
    EVM_WIRE_FIXED64 = 1,
    EVM_WIRE_LEN = 2,
    EVM_WIRE_FIXED32 = 5,
};

/* Reads a varint at buf[*pos] (at most 10 bytes, value < 2^64) and advances
 * *pos past it. */
evm_wire_status evm_wire_read_varint(const uint8_t *buf, size_t size, size_t *pos, uint64_t *value);

/* Reads a field key at buf[*pos]: field number 1 to 2^29 - 1 and wire type
 * 0, 1, 2 or 5. */
evm_wire_status evm_wire_read_key(const uint8_t *buf, size_t size, size_t *pos, uint32_t *field,
                                  int *wire_type);

/* Skips the value of a field of the given wire type at buf[*pos]; for wire
 * type 2, *value_start and *value_len (either may be NULL) receive the
 * payload's place. */
evm_wire_status evm_wire_skip_value(const uint8_t *buf, size_t size, size_t *pos, int wire_type,
                                    size_t *value_start, size_t *value_len);

/* Bytes that varint v takes (1 to 10). */
size_t evm_wire_varint_size(uint64_t v);

/* One initializer's raw_data, in the order of the initializers. */
typedef struct evm_wire_payload {
    uint8_t *data; /* malloc'd; NULL when present is 0 or len is 0 */
    size_t len;
    int present; /* the TensorProto had a raw_data field (the last one counts, as in protobuf) */
} evm_wire_payload;

typedef struct evm_wire_stripped {
    uint8_t *message; /* malloc'd copy of the model without the initializers' raw_data */
    size_t size;
    evm_wire_payload *payloads; /* one per initializer field of the graph */
    size_t n_payloads;
} evm_wire_stripped;

/* Called after each part of a payload has been copied out of the input, with
 * the part's place in the input (parts of one payload are consecutive; inner
 * part boundaries fall on multiples of EVM_WIRE_RELEASE_CHUNK from the start
 * of the buffer), so that a caller can drop the source pages from memory. */
typedef void (*evm_wire_release_fn)(void *ctx, size_t offset, size_t len);
#define EVM_WIRE_RELEASE_CHUNK ((size_t)1 << 20)

/* Strips the initializers' raw_data out of the ModelProto in buf. On success
 * *out holds the copy and the payloads (free with evm_wire_stripped_free);
 * on failure *out is empty. release may be NULL. */
evm_wire_status evm_wire_strip_model(const uint8_t *buf, size_t size, evm_wire_release_fn release,
                                     void *ctx, evm_wire_stripped *out);

void evm_wire_stripped_free(evm_wire_stripped *s);

#endif
