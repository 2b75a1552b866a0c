//go:build amd64 && !purego

#include "textflag.h"

// func interleave2(dst, p0, p1 *byte, n int, rot bool)
TEXT ·interleave2(SB), NOSPLIT, $0-33
	MOVQ    dst+0(FP), DI
	MOVQ    p0+8(FP), SI
	MOVQ    p1+16(FP), DX
	MOVQ    n+24(FP), CX
	MOVBLZX rot+32(FP), AX
	TESTL   AX, AX
	JNZ     rotated

plain:
	MOVOU     (SI), X0
	MOVOU     (DX), X1
	MOVO      X0, X2
	PUNPCKLBW X1, X0 // p0[0] p1[0] p0[1] p1[1] ... p0[7] p1[7]
	PUNPCKHBW X1, X2 // the same for bytes 8 to 15
	MOVOU     X0, (DI)
	MOVOU     X2, 16(DI)
	ADDQ      $16, SI
	ADDQ      $16, DX
	ADDQ      $32, DI
	SUBQ      $16, CX
	JNZ       plain
	RET

rotated:
	MOVOU     (SI), X0
	MOVOU     (DX), X1
	MOVO      X0, X2
	PUNPCKLBW X1, X0
	PUNPCKHBW X1, X2
	MOVO      X0, X3 // each 16-bit element v becomes v>>1 | v<<15
	MOVO      X2, X4
	PSRLW     $1, X0
	PSLLW     $15, X3
	POR       X3, X0
	PSRLW     $1, X2
	PSLLW     $15, X4
	POR       X4, X2
	MOVOU     X0, (DI)
	MOVOU     X2, 16(DI)
	ADDQ      $16, SI
	ADDQ      $16, DX
	ADDQ      $32, DI
	SUBQ      $16, CX
	JNZ       rotated
	RET
