/*
 * peer_driver.c -- runs one peer's step over a sequence written into RAM by the benchmark, and
 * keeps the state after every step for the check against the peer's numpy port.
 *
 * The emulator calls peer_run and counts the instructions of each peer_step call, from entry to
 * return (edgernn.targets.unicorn_emu): the driver's own loop and copies are not counted.
 */
#include "peer.h"

int32_t peer_inputs;
int32_t peer_hidden;
int8_t peer_tanh[256];
int8_t peer_x[PEER_MAX_STEPS * PEER_MAX_INPUTS];  /* step t's input at t * peer_inputs */
int8_t peer_out[PEER_MAX_STEPS * PEER_MAX_HIDDEN]; /* the state after step t at t * peer_hidden */

int32_t peer_run(int32_t steps)
{
    int32_t t;
    int32_t j;
    if (steps < 0 || steps > PEER_MAX_STEPS || peer_inputs > PEER_MAX_INPUTS || peer_hidden > PEER_MAX_HIDDEN) {
        return -1;
    }
    peer_setup();
    for (t = 0; t < steps; ++t) {
        const int8_t *h;
        peer_step(&peer_x[t * peer_inputs]);
        h = peer_state();
        for (j = 0; j < peer_hidden; ++j) {
            peer_out[t * peer_hidden + j] = h[j];
        }
    }
    return 0;
}

/* picolibc's crt0 (the gcc images) calls main; the emulator calls peer_run directly and the
 * images are never booted, so main has nothing to do. */
int main(void)
{
    return 0;
}
