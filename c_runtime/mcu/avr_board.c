/*
 * avr_board.c -- main of the AVR image (ATmega328P, run from reset on simavr): the check of
 * harness.c, its cycle counts and its stack figure, printed as one line on USART0, which simavr
 * shows on its console; then `cli; sleep`, on which simavr exits.
 *
 * simavr has no call API like Unicorn's, so the image checks itself, as the QEMU board images do:
 *   edgernn-mcu-avr mismatches=M stack=S first=K,Q,T,I ram_free=F overhead=O isr=C
 *       bench_calls=N bench_cycles=B calls=N2 cycles=B2 min=LO max=HI
 * mismatches and first: mcu_check over every sequence of this image's vectors.h; stack: the
 * harness's painted high-water mark of one sequence (interrupts off); ram_free: bytes between the
 * end of .bss and main's stack pointer; bench_*: the model calls of the first MCU_BENCH_SEQS
 * sequences (a run of their own, before the check), *_cycles their cycles summed.
 *
 * Cycles of a call: Timer1 runs at the CPU clock (prescaler 1) and its overflow interrupt extends
 * it to 32 bits. mcu_time_begin/end read it on either side of the model call; from the
 * difference the image takes off what timing costs (measured first: an empty BEGIN/END pair) and
 * the overflow interrupts taken in between (each one's cost measured by timing the same busy loop
 * with and without an overflow in it). What is left is the cycles of the call itself: argument
 * set-up, CALL, the model, RET. simavr counts cycles per instruction as the datasheet gives them.
 */
#include <avr/interrupt.h>
#include <avr/io.h>
#include <stdint.h>
#include <stdio.h>

#ifndef MCU_BENCH_SEQS
#define MCU_BENCH_SEQS 8
#endif
#ifndef MCU_UART_UBRR
#define MCU_UART_UBRR 8 /* 115200 Bd at 16 MHz (U2X0 = 0); simavr does not care */
#endif

/* harness.c */
int32_t mcu_check(int32_t first, int32_t count);
uint32_t mcu_stack_probe(void);
extern volatile int32_t mcu_first_kind;
extern volatile int32_t mcu_first_seq;
extern volatile int32_t mcu_first_step;
extern volatile int32_t mcu_first_index;

void mcu_time_begin(void);
void mcu_time_end(void);

extern char __heap_start; /* avr-libc's linker script: the end of .bss */

/* ---- cycle counter: Timer1 at the CPU clock, extended by its overflow interrupt ------------- */

static volatile uint16_t mcu_overflows; /* overflow interrupts taken */

ISR(TIMER1_OVF_vect)
{
    ++mcu_overflows;
}

/* The cycle count, and how many overflow interrupts have run by then, read together. */
static uint32_t mcu_now(uint16_t *taken)
{
    const uint8_t sreg = SREG;
    uint16_t lo, hi;
    cli();
    lo = TCNT1;
    hi = mcu_overflows;
    *taken = hi;
    if ((TIFR1 & _BV(TOV1)) && lo < 0x8000u) {
        ++hi; /* wrapped, and its interrupt has not run yet (it will, once SREG is back) */
    }
    SREG = sreg;
    return ((uint32_t)hi << 16) | lo;
}

static uint32_t mcu_t0;
static uint16_t mcu_taken0;
static uint16_t mcu_overhead; /* cycles of an empty BEGIN/END pair */
static uint16_t mcu_isr;      /* cycles of one overflow interrupt */
static uint8_t mcu_calibrated;

static uint32_t mcu_calls;
static uint32_t mcu_cycles;
static uint32_t mcu_min = UINT32_MAX;
static uint32_t mcu_max;
static uint32_t mcu_last; /* the last raw interval, for calibration */

void mcu_time_begin(void)
{
    mcu_t0 = mcu_now(&mcu_taken0);
}

void mcu_time_end(void)
{
    uint16_t taken;
    const uint32_t t1 = mcu_now(&taken);
    uint32_t c = t1 - mcu_t0;
    mcu_last = c;
    if (!mcu_calibrated) {
        return;
    }
    c -= mcu_overhead + (uint32_t)(uint16_t)(taken - mcu_taken0) * mcu_isr;
    ++mcu_calls;
    mcu_cycles += c;
    if (c < mcu_min) {
        mcu_min = c;
    }
    if (c > mcu_max) {
        mcu_max = c;
    }
}

/* Exactly 4 n - 1 cycles for n >= 1 (SBIW 2 + BRNE 2, the last BRNE 1), whatever the compiler. */
static void mcu_busy(uint16_t n)
{
    __asm__ volatile("1: sbiw %0, 1\n\tbrne 1b" : "+w"(n));
}

/* The raw interval of BEGIN, busy(n), END with Timer1 started at `start`. */
static uint32_t mcu_time_busy(uint16_t start, uint16_t n, uint16_t *overflows)
{
    const uint16_t before = mcu_overflows;
    cli();
    TCNT1 = start;
    TIFR1 = _BV(TOV1); /* writing 1 clears the flag */
    sei();
    mcu_time_begin();
    if (n) {
        mcu_busy(n);
    }
    mcu_time_end();
    cli();
    *overflows = (uint16_t)(mcu_overflows - before);
    sei();
    return mcu_last;
}

static void mcu_calibrate(void)
{
    uint16_t k0, k1, k2;
    uint32_t none, one;
    mcu_overhead = (uint16_t)mcu_time_busy(0, 0, &k0);
    none = mcu_time_busy(0, 8000, &k1);       /* 32 k cycles from 0: no overflow */
    one = mcu_time_busy(0xC000u, 8000, &k2); /* from 0xC000: one overflow in the loop */
    mcu_isr = (k0 == 0 && k1 == 0 && k2 == 1) ? (uint16_t)(one - none) : 0xFFFFu;
    mcu_calibrated = 1;
}

/* ---- output on USART0 ---------------------------------------------------------------------- */

static int mcu_putc(char ch, FILE *stream)
{
    (void)stream;
    loop_until_bit_is_set(UCSR0A, UDRE0);
    UDR0 = (uint8_t)ch;
    return 0;
}

static FILE mcu_uart = FDEV_SETUP_STREAM(mcu_putc, NULL, _FDEV_SETUP_WRITE);

int main(void)
{
    uint16_t sp;
    int32_t mismatches;
    uint32_t stack, bench_calls, bench_cycles;
    __asm__ volatile("in %A0, __SP_L__\n\tin %B0, __SP_H__" : "=r"(sp));
    UBRR0 = MCU_UART_UBRR;
    UCSR0B = _BV(TXEN0);
    TCCR1A = 0;
    TCCR1B = _BV(CS10); /* Timer1 at the CPU clock */
    TIMSK1 = _BV(TOIE1);
    sei();
    mcu_calibrate();

    (void)mcu_check(0, MCU_BENCH_SEQS);
    bench_calls = mcu_calls;
    bench_cycles = mcu_cycles;
    mcu_calls = mcu_cycles = mcu_max = 0;
    mcu_min = UINT32_MAX;
    mismatches = mcu_check(0, INT32_MAX);

    cli(); /* no interrupt frame on the stack while it is measured */
    stack = mcu_stack_probe();
    fprintf(&mcu_uart,
            "edgernn-mcu-avr mismatches=%ld stack=%lu first=%ld,%ld,%ld,%ld ram_free=%u overhead=%u isr=%u "
            "bench_calls=%lu bench_cycles=%lu calls=%lu cycles=%lu min=%lu max=%lu\n",
            (long)mismatches, (unsigned long)stack, (long)mcu_first_kind, (long)mcu_first_seq,
            (long)mcu_first_step, (long)mcu_first_index, (unsigned)(sp - (uint16_t)(uintptr_t)&__heap_start),
            (unsigned)mcu_overhead, (unsigned)mcu_isr, (unsigned long)bench_calls, (unsigned long)bench_cycles,
            (unsigned long)mcu_calls, (unsigned long)mcu_cycles, (unsigned long)mcu_min, (unsigned long)mcu_max);
    loop_until_bit_is_set(UCSR0A, UDRE0); /* the last byte has left the data register */
    __asm__ volatile("sleep"); /* interrupts off: simavr stops here */
    for (;;) {
    }
}
