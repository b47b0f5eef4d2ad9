/*
 * peer.h -- what the peer driver (peer_driver.c) and one peer's step (cmsis_fc.c,
 * cmsis_lstm_gate.c, nnom_cell.c or naive.c) share. edgernn.bench.peers builds one image per
 * peer, target and compiler; the benchmark writes the shape, the weights and the inputs into the
 * image's RAM by symbol name (edgernn/bench/peers/ports.py names them), calls peer_run and reads
 * peer_out, so one image serves every shape up to PEER_MAX_INPUTS x PEER_MAX_HIDDEN.
 *
 * A library peer reads the shape at run time, as a call into the library takes it (edgernn's
 * model.h folds its shape at compile time, which is part of what the comparison measures); the
 * naive step is built per shape (naive.c).
 */
#ifndef EDGERNN_PEER_H
#define EDGERNN_PEER_H

#include <stdint.h>

#if !defined(PEER_MAX_INPUTS) || !defined(PEER_MAX_HIDDEN) || !defined(PEER_MAX_STEPS)
#error "define PEER_MAX_INPUTS, PEER_MAX_HIDDEN and PEER_MAX_STEPS"
#endif

/* Written by the benchmark before peer_run (peer_driver.c defines them). */
extern int32_t peer_inputs;  /* I */
extern int32_t peer_hidden;  /* H */
extern int8_t peer_tanh[256]; /* an int8 tanh table, indexed by an int8 pre-activation + 128 */

/* Defined by each peer. peer_setup runs once per peer_run, before the steps (not counted): it
 * zeroes the state and builds whatever argument structures the library takes. peer_step is the
 * counted call: one RNN step h' = tanh(W x + U h + b) in the peer's own arithmetic. */
void peer_setup(void);
void peer_step(const int8_t *x);
const int8_t *peer_state(void);

#endif /* EDGERNN_PEER_H */
