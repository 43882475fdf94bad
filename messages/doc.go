// Package messages is xcatbm's wire format: the oslo.messaging envelope, nova's
// flattened request context, compute RPC casts, calls and replies, NovaObject
// primitives, versioned and legacy instance notifications, and xcatbm's own job
// messages. It holds data and its encoding only; it does no I/O and is safe for
// concurrent use as long as a value is not mutated while it is shared.
//
// The facts it encodes were measured against the real oslo.messaging library
// (Debian's 14.0.3) and a real nova control plane; the captures are the test vectors
// in testdata/. Decoding is strict where a mistake would act on the wrong thing (a
// malformed envelope, an instance without uuid, an impossible power state: a
// *FieldError naming the field) and lenient about extra keys that newer nova adds.
package messages
