/*
 * Test setup only, never shipped: a stand-in for Windows' bcryptprimitives.dll under Wine 8.0.
 *
 * Rust's standard library (1.78 and later) imports ProcessPrng from bcryptprimitives.dll. Windows
 * 10 and 11 have it; Wine 8.0 does not, so every Rust program fails to start there with
 * STATUS_DLL_NOT_FOUND (c0000135). tests/run.sh builds this file with mingw and copies the DLL
 * into the throw-away Wine prefix of a test run. It fills the buffer from RtlGenRandom
 * (advapi32's SystemFunction036), which Wine implements.
 */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length: feed it in pieces. */
    while (len > 0) {
        ULONG piece = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, piece))
            return FALSE;
        data += piece;
        len -= piece;
    }
    return TRUE;
}
