/*
 * Holds a file open the way IIS (w3wp.exe) holds a site's files: shared for reading only, so
 * that replacing or deleting it fails with a sharing violation until it lets go. For the
 * Windows end-to-end tests under Wine (tests/windows.rs); built by tests/setup.sh.
 *
 * usage: hold.exe FILE SECONDS   (prints "holding" once it holds the file)
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: hold.exe FILE SECONDS\n");
        return 2;
    }
    HANDLE file = CreateFileA(argv[1], GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                              FILE_ATTRIBUTE_NORMAL, NULL);
    if (file == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "cannot open %s: error %lu\n", argv[1], GetLastError());
        return 1;
    }
    printf("holding\n");
    fflush(stdout);
    Sleep(atoi(argv[2]) * 1000);
    CloseHandle(file);
    return 0;
}
