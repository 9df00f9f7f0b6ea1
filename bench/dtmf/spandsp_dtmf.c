/*
 * spandsp's DTMF receiver (dtmf_rx, the detector FreeSWITCH's mod_spandsp uses) as a
 * filter, so the in-band detector of sspr-ivr can be compared with it on identical audio.
 *
 * Input on stdin: a sequence of records, each a little-endian u32 sample count followed
 * by that many little-endian s16 samples at 8 kHz. Every record gets a fresh receiver
 * with spandsp's default parameters (no dial-tone filter, its default twist and
 * threshold), fed in 20 ms (160-sample) chunks as a media stack would.
 * Output on stdout: one line per record, the digits reported (possibly empty).
 *
 * Built by bench/dtmf/sweep.sh:  cc -O2 -o OUT spandsp_dtmf.c -lspandsp
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spandsp.h>

static char digits[1 << 16];
static size_t n_digits;

static void on_digits(void *user_data, const char *d, int len)
{
    (void) user_data;
    for (int i = 0; i < len && n_digits + 1 < sizeof(digits); i++)
        digits[n_digits++] = d[i];
}

int main(void)
{
    int16_t *buf = NULL;
    size_t cap = 0;
    uint32_t n;
    while (fread(&n, sizeof n, 1, stdin) == 1) {
        if (n > cap) {
            buf = realloc(buf, n * sizeof *buf);
            if (buf == NULL) {
                perror("realloc");
                return 1;
            }
            cap = n;
        }
        if (fread(buf, sizeof *buf, n, stdin) != n) {
            fprintf(stderr, "spandsp_dtmf: short record\n");
            return 1;
        }
        n_digits = 0;
        dtmf_rx_state_t *rx = dtmf_rx_init(NULL, on_digits, NULL);
        if (rx == NULL) {
            fprintf(stderr, "spandsp_dtmf: dtmf_rx_init failed\n");
            return 1;
        }
        for (uint32_t i = 0; i < n; i += 160) {
            uint32_t len = n - i < 160 ? n - i : 160;
            dtmf_rx(rx, buf + i, (int) len);
        }
        dtmf_rx_free(rx);
        digits[n_digits] = '\0';
        printf("%s\n", digits);
        fflush(stdout);
    }
    free(buf);
    return 0;
}
