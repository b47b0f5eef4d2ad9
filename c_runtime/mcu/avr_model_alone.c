/*
 * avr_model_alone.c -- the model object linked on its own, never run: edgernn.targets.avr links
 * model_unit.o with this main (and nothing of the harness) and reads the linker map, to size the
 * libgcc helpers that the model's code pulls in (their symbols carry no size). Every call that
 * model_unit.c defines is reached, so --gc-sections keeps what a firmware calling them would keep; the
 * buffers are locals, so no .data or .bss (and no start-up copy loop) enters the image.
 */
#include <stddef.h>
#include <stdint.h>

#include "mcu_model.h"

int main(void)
{
    int8_t state[8];
    int8_t buf[8];
    int32_t io[8];
    mcu_model_init(state);
    for (;;) { /* the calls model_unit.c defines (-DMCU_BIDIRECTIONAL as for it) */
#if MCU_BIDIRECTIONAL
        (void)mcu_model_run(state, io, 1, buf, sizeof buf, io);
#else
        (void)buf;
        (void)mcu_model_step(state, io);
        mcu_model_logits(state, io);
#endif
    }
}
