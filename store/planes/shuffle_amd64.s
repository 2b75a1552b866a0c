//go:build amd64 && !purego

#include "textflag.h"

// Two planes: X0 and X2 get elements 0-7 and 8-15.
#define INTERLEAVE2 \
	MOVOU     (SI), X0; \
	MOVOU     (DX), X1; \
	MOVO      X0, X2;   \
	PUNPCKLBW X1, X0;   \
	PUNPCKHBW X1, X2

// ROT2 rotates each 16-bit element of V right by one bit.
#define ROT2(V) \
	MOVO  V, X3;   \
	PSRLW $1, V;   \
	PSLLW $15, X3; \
	POR   X3, V

#define STORE2 \
	MOVOU X0, (DI); \
	MOVOU X2, 16(DI)

#define ADVANCE2 \
	ADDQ $16, SI; \
	ADDQ $16, DX; \
	ADDQ $32, DI; \
	SUBQ $16, CX

// func interleave2(dst, p0, p1 *byte, n int, rot bool)
TEXT ·interleave2(SB), NOSPLIT, $0-33
	MOVQ    dst+0(FP), DI
	MOVQ    p0+8(FP), SI
	MOVQ    p1+16(FP), DX
	MOVQ    n+24(FP), CX
	MOVBLZX rot+32(FP), AX
	TESTL   AX, AX
	JNZ     rotated2

plain2:
	INTERLEAVE2
	STORE2
	ADVANCE2
	JNZ plain2
	RET

rotated2:
	INTERLEAVE2
	ROT2(X0)
	ROT2(X2)
	STORE2
	ADVANCE2
	JNZ rotated2
	RET

// Four planes: X0, X6, X4, X7 get elements 0-3, 4-7, 8-11 and 12-15.
#define INTERLEAVE4 \
	MOVOU     (SI), X0;  \
	MOVOU     (R8), X1;  \
	MOVOU     (R9), X2;  \
	MOVOU     (R10), X3; \
	MOVO      X0, X4;    \
	PUNPCKLBW X1, X0;    \
	PUNPCKHBW X1, X4;    \
	MOVO      X2, X5;    \
	PUNPCKLBW X3, X2;    \
	PUNPCKHBW X3, X5;    \
	MOVO      X0, X6;    \
	PUNPCKLWL X2, X0;    \
	PUNPCKHWL X2, X6;    \
	MOVO      X4, X7;    \
	PUNPCKLWL X5, X4;    \
	PUNPCKHWL X5, X7

// ROT4 rotates the top 16-bit half of each 32-bit element of V right by
// one bit; X15 holds 0x0000ffff in every element.
#define ROT4(V) \
	MOVO  V, X8;    \
	PSRLW $1, X8;   \
	MOVO  V, X9;    \
	PSLLW $15, X9;  \
	POR   X9, X8;   \
	MOVO  X15, X10; \
	PANDN X8, X10;  \
	PAND  X15, V;   \
	POR   X10, V

#define XOR4 \
	MOVOU (R11), X8;   \
	PXOR  X8, X0;      \
	MOVOU 16(R11), X9; \
	PXOR  X9, X6;      \
	MOVOU 32(R11), X10; \
	PXOR  X10, X4;     \
	MOVOU 48(R11), X11; \
	PXOR  X11, X7

// SUB4 turns the zigzagged differences in X0, X6, X4, X7 into content:
// each 32-bit element x becomes ref + (x>>1 ^ -(x&1)); X14 holds 1 in every
// element.
#define UNZIGZAG_ADD(V, OFF) \
	MOVO  V, X8;        \
	PSRLL $1, X8;       \
	PAND  X14, V;       \
	PXOR  X9, X9;       \
	PSUBL V, X9;        \
	PXOR  X9, X8;       \
	MOVOU OFF(R11), X10; \
	PADDL X10, X8;      \
	MOVO  X8, V

#define SUB4 \
	UNZIGZAG_ADD(X0, 0);  \
	UNZIGZAG_ADD(X6, 16); \
	UNZIGZAG_ADD(X4, 32); \
	UNZIGZAG_ADD(X7, 48)

#define STORE4 \
	MOVOU X0, (DI);   \
	MOVOU X6, 16(DI); \
	MOVOU X4, 32(DI); \
	MOVOU X7, 48(DI)

#define ADVANCE4 \
	ADDQ $16, SI;  \
	ADDQ $16, R8;  \
	ADDQ $16, R9;  \
	ADDQ $16, R10; \
	ADDQ $64, DI;  \
	ADDQ $64, R11; \
	SUBQ $16, CX

// func interleave4(dst, p0, p1, p2, p3, ref *byte, n int, rot, sub bool)
TEXT ·interleave4(SB), NOSPLIT, $0-58
	MOVQ    dst+0(FP), DI
	MOVQ    p0+8(FP), SI
	MOVQ    p1+16(FP), R8
	MOVQ    p2+24(FP), R9
	MOVQ    p3+32(FP), R10
	MOVQ    ref+40(FP), R11
	MOVQ    n+48(FP), CX
	MOVBLZX rot+56(FP), AX
	MOVBLZX sub+57(FP), BX
	PCMPEQL X15, X15
	PSRLL   $16, X15
	PCMPEQL X14, X14
	PSRLL   $31, X14
	TESTQ   R11, R11
	JNZ     combine
	TESTL   AX, AX
	JNZ     rotated

plain:
	INTERLEAVE4
	STORE4
	ADVANCE4
	JNZ plain
	RET

rotated:
	INTERLEAVE4
	ROT4(X0)
	ROT4(X6)
	ROT4(X4)
	ROT4(X7)
	STORE4
	ADVANCE4
	JNZ rotated
	RET

combine:
	TESTL BX, BX
	JNZ   subtract
	TESTL AX, AX
	JNZ   combineRotated

combinePlain:
	INTERLEAVE4
	XOR4
	STORE4
	ADVANCE4
	JNZ combinePlain
	RET

combineRotated:
	INTERLEAVE4
	ROT4(X0)
	ROT4(X6)
	ROT4(X4)
	ROT4(X7)
	XOR4
	STORE4
	ADVANCE4
	JNZ combineRotated
	RET

subtract:
	TESTL AX, AX
	JNZ   subtractRotated

subtractPlain:
	INTERLEAVE4
	SUB4
	STORE4
	ADVANCE4
	JNZ subtractPlain
	RET

subtractRotated:
	INTERLEAVE4
	ROT4(X0)
	ROT4(X6)
	ROT4(X4)
	ROT4(X7)
	SUB4
	STORE4
	ADVANCE4
	JNZ subtractRotated
	RET
