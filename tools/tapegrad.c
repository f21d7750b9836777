#include <stdio.h>
int main(void) { fputs("tapegrad: the command line is being written\n", stderr); return 1; }
