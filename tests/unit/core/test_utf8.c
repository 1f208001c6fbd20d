/* SPDX-License-Identifier: MIT */
/* tests/unit/core/test_utf8.c - MQTT UTF-8 Encoded String validation (core/utf8.c). */
#include "core/utf8.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#include "support/support.h"

TestSuite(utf8);

struct utf8_case {
    const char *name;
    const char *hex; /* the bytes under test */
    bool valid;
};

static const struct utf8_case cases[] = {
    {"empty string", "", true},
    {"ascii", "68 65 6c 6c 6f", true},
    {"long ascii over the 8-byte fast path", "61626364656667686970717273747576777879", true},
    {"control characters U+0001..U+001F and U+007F", "01 02 09 0a 0d 1b 1f 7f", true},
    {"U+0080 smallest two-byte", "c2 80", true},
    {"U+00E9 two-byte", "c3 a9", true},
    {"U+07FF largest two-byte", "df bf", true},
    {"U+0800 smallest three-byte", "e0 a0 80", true},
    {"U+20AC euro sign", "e2 82 ac", true},
    {"U+D7FF just below surrogates", "ed 9f bf", true},
    {"U+E000 just above surrogates", "ee 80 80", true},
    {"U+FEFF BOM is kept, not stripped", "ef bb bf", true},
    {"U+FFFF non-character allowed", "ef bf bf", true},
    {"U+10000 smallest four-byte", "f0 90 80 80", true},
    {"U+1F600 emoji", "f0 9f 98 80", true},
    {"U+10FFFF largest code point", "f4 8f bf bf", true},
    {"mixed widths after 8 ascii bytes", "61 62 63 64 65 66 67 68 c3 a9 e2 82 ac f0 9f 98 80 41",
     true},
    {"spec example U+2A6D4 (MQTT 1.5.4)", "41 f0 aa 9b 94", true},

    {"U+0000 alone", "00", false},
    {"U+0000 inside ascii", "61 00 62", false},
    {"U+0000 inside an 8-byte ascii run", "61 62 63 00 65 66 67 68 69", false},
    {"U+0000 as last byte of long ascii", "61 62 63 64 65 66 67 68 69 6a 6b 6c 6d 6e 6f 00", false},
    {"overlong U+0000 (c0 80)", "c0 80", false},
    {"overlong two-byte c1 bf", "c1 bf", false},
    {"overlong three-byte U+007F", "e0 81 bf", false},
    {"overlong three-byte U+07FF", "e0 9f bf", false},
    {"overlong four-byte U+FFFF", "f0 8f bf bf", false},
    {"overlong four-byte U+0000", "f0 80 80 80", false},
    {"surrogate U+D800", "ed a0 80", false},
    {"surrogate U+DBFF", "ed af bf", false},
    {"surrogate U+DC00", "ed b0 80", false},
    {"surrogate U+DFFF", "ed bf bf", false},
    {"CESU-8 surrogate pair", "ed a0 bd ed b8 80", false},
    {"U+110000 above range", "f4 90 80 80", false},
    {"f5 lead byte", "f5 80 80 80", false},
    {"f8 five-byte lead", "f8 88 80 80 80", false},
    {"fe byte", "fe", false},
    {"ff byte", "ff", false},
    {"lone continuation byte", "80", false},
    {"continuation after ascii", "61 bf", false},
    {"truncated two-byte", "c3", false},
    {"truncated three-byte (1 of 2)", "e2", false},
    {"truncated three-byte (2 of 2)", "e2 82", false},
    {"truncated four-byte", "f0 9f 98", false},
    {"truncated sequence followed by ascii", "e2 82 41", false},
    {"two-byte lead followed by lead", "c3 c3 a9", false},
    {"bad continuation in four-byte", "f0 9f 28 80", false},
    {"invalid after 8 ascii bytes", "61 62 63 64 65 66 67 68 ff", false},
};

Test(utf8, classifies_every_table_case)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[64];
        size_t n = mqt_hex(cases[i].hex, buf, sizeof(buf));
        bool got = mq_utf8_is_valid(buf, n);
        cr_expect(got == cases[i].valid, "case '%s': expected %s, got %s", cases[i].name,
                  cases[i].valid ? "valid" : "invalid", got ? "valid" : "invalid");
    }
}

Test(utf8, checks_only_the_given_length)
{
    /* a NUL just past the end must not be looked at */
    const uint8_t s[] = {'a', 'b', 0};
    cr_expect(mq_utf8_is_valid(s, 2));
    cr_expect(not(mq_utf8_is_valid(s, 3)), "NUL inside the length accepted");
    /* a multi-byte sequence cut by the length is truncated, even if the buffer goes on */
    const uint8_t e[] = {0xe2, 0x82, 0xac};
    cr_expect(not(mq_utf8_is_valid(e, 2)), "cut sequence accepted");
    cr_expect(mq_utf8_is_valid(e, 3));
}

Test(utf8, finds_an_invalid_byte_at_every_position_of_a_long_string)
{
    /* exercises the 8-byte fast path with the bad byte at each alignment */
    for (size_t len = 1; len <= 40; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            uint8_t buf[40];
            memset(buf, 'x', len);
            buf[pos] = 0x00;
            cr_expect(not(mq_utf8_is_valid(buf, len)), "NUL at %zu of %zu accepted", pos, len);
            buf[pos] = 0xff;
            cr_expect(not(mq_utf8_is_valid(buf, len)), "0xff at %zu of %zu accepted", pos, len);
            buf[pos] = 0x80;
            cr_expect(not(mq_utf8_is_valid(buf, len)), "lone 0x80 at %zu of %zu accepted", pos,
                      len);
            buf[pos] = 0x7f;
            cr_expect(mq_utf8_is_valid(buf, len), "DEL at %zu of %zu rejected", pos, len);
        }
    }
}

Test(utf8, accepts_every_scalar_value_and_rejects_every_surrogate)
{
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp += (cp < 0x11000 ? 1 : 0x3F)) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80) {
            b[0] = (uint8_t)cp;
            n = 1;
        } else if (cp < 0x800) {
            b[0] = (uint8_t)(0xC0 | cp >> 6);
            b[1] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (uint8_t)(0xE0 | cp >> 12);
            b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            b[0] = (uint8_t)(0xF0 | cp >> 18);
            b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            b[3] = (uint8_t)(0x80 | (cp & 0x3F));
            n = 4;
        }
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        bool got = mq_utf8_is_valid(b, n);
        if (got == surrogate) /* one message, not a flood */
            cr_assert(got != surrogate, "U+%04X: expected %s", cp, surrogate ? "invalid" : "valid");
    }
}
