/*
 * A stand-in for Windows' bcryptprimitives.dll, for the tests only.
 *
 * Why: Rust's standard library (1.78 and later) gets its random numbers (HashMap keys) from
 * ProcessPrng in bcryptprimitives.dll, which every supported Windows has. Debian's Wine 8.0
 * does not ship that DLL, so every Rust program, kuduhook.exe included, fails to start under
 * it. This one exports ProcessPrng on top of RtlGenRandom (advapi32's SystemFunction036),
 * which Wine has. tests/setup.sh builds it with mingw-w64 and puts it in the tests' Wine
 * prefix (system32); kuduhook.exe itself is unchanged and uses the real DLL on Windows.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
