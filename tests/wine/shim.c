/* bcryptprimitives.dll for Wine 8, which lacks it: cryptography's Windows wheel
 * imports ProcessPrng from it.  Fills the buffer from RtlGenRandom
 * (advapi32 SystemFunction036), i.e. the OS random generator; no crypto here.
 * Built by tests/wine.py: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll
 * shim.c -ladvapi32 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
