/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Entry points and the few things C cannot do. Both images share this:
 *   image + 0x000  startup_32: 32-bit boot protocol (ESI = boot_params)
 *   image + 0x1e0  kernel_info ("LToP", boot protocol 2.15)
 *   image + 0x200  startup_64: 64-bit boot protocol (RSI = boot_params),
 *                  the entry polyvm and our bzImage setup code use
 *   pvh_start      PVH (EBX = hvm_start_info), named by the ELF note */

#include "bootinfo.h"
#include "cpu.h"

#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define CR0_PE 0x1
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define PTE_TABLE 0x07 /* present, writable, user: CPL 3 may use any page */
#define PTE_2M 0x87    /* the same plus PS */

#define BOOT_STACK_SIZE 16384
#define TRAP_STACK_SIZE 16384
#define AP_STACK_SIZE 4096
#define MAX_CPUS 64

        .section .head, "ax"
        .code32
        .globl startup_32
startup_32:
        cli
        cld
        movl $BOOT_BZIMAGE32, %ebp
        jmp start32

        .globl pvh_start
pvh_start:
        cli
        cld
        movl %ebx, %esi
        movl $BOOT_PVH, %ebp

/* Paging off, flat segments from the loader; EBP = entry kind, ESI = info. */
start32:
        lgdt gdt_desc
        ljmp $GDT_CODE32, $1f
1:      movl $GDT_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs

        movl $__bss_start, %edi
        movl $__bss_end, %ecx
        subl %edi, %ecx
        shrl $2, %ecx
        xorl %eax, %eax
        rep stosl

        /* Identity map 0..4 GiB in 2 MiB pages: PML4[0] -> PDPT[0..3] -> PD. */
        movl $(boot_pdpt + PTE_TABLE), boot_pml4
        movl $(boot_pd + PTE_TABLE), %eax
        movl $boot_pdpt, %edi
        movl $4, %ecx
2:      movl %eax, (%edi)
        addl $4096, %eax
        addl $8, %edi
        loop 2b
        movl $PTE_2M, %eax
        movl $boot_pd, %edi
        movl $2048, %ecx
3:      movl %eax, (%edi)
        addl $0x200000, %eax
        addl $8, %edi
        loop 3b

        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl $boot_pml4, %eax
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $(CR0_PG | CR0_PE), %eax
        movl %eax, %cr0
        ljmp $GDT_CODE64, $start64_from32

        .code64
start64_from32:
        /* The upper halves of registers are undefined after the switch. */
        movl %esi, %esi
        movl %ebp, %ebp
        jmp start64

        /* Boot protocol 2.15 kernel_info; setup.S points at it. */
        .org 0x1e0
        .ascii "LToP"
        .long 16                /* size */
        .long 16                /* size_total */
        .long 0                 /* setup_type_max */

        .org 0x200
        .globl startup_64
startup_64:
        cli
        cld
        /* The loader's identity map covers us; clear .bss (the page tables
         * in it are not in use yet). RSI survives rep stosq. */
        movq $__bss_start, %rdi
        movq $__bss_end, %rcx
        subq %rdi, %rcx
        shrq $3, %rcx
        xorl %eax, %eax
        rep stosq
        movl $BOOT_BZIMAGE64, %ebp

start64:
        lgdt gdt_desc
        movl $GDT_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        movq $boot_stack_top, %rsp
        pushq $GDT_CODE64
        pushq $1f
        lretq
1:      movl %ebp, %edi
        call kmain
hang:   cli
        hlt
        jmp hang

        .text
/* An AP arrives here from the trampoline in long mode, on its own stack. */
        .globl ap_start64
ap_start64:
        lgdt gdt_desc
        movl $GDT_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        pushq $GDT_CODE64
        pushq $1f
        lretq
1:      call ap_main
        jmp hang

/* void halt_if_equal(volatile uint32_t *p, uint32_t v)
 * trap.c moves an interrupt that lands inside the window to its end, so the
 * check and the hlt behave as one instruction. */
        .globl halt_if_equal, halt_window_start, halt_window_end
halt_if_equal:
halt_window_start:
        cmpl %esi, (%rdi)
        jne halt_window_end
        hlt
halt_window_end:
        ret

/* uint64_t user_enter(void (*fn)(void), uint64_t user_rsp) */
        .globl user_enter
user_enter:
        pushq %rbx
        pushq %rbp
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, user_saved_rsp(%rip)
        pushq $(GDT_UDATA | 3)
        pushq %rsi
        pushq $0x202            /* IF on, IOPL 0 */
        pushq $(GDT_UCODE64 | 3)
        pushq %rdi
        iretq

/* void user_exit(uint64_t result): back into user_enter's caller. */
        .globl user_exit
user_exit:
        movq %rdi, %rax
        movq user_saved_rsp(%rip), %rsp
        movl $GDT_DATA, %ecx
        movl %ecx, %ds
        movl %ecx, %es
        movl %ecx, %ss
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %rbp
        popq %rbx
        sti                     /* the trap came through an interrupt gate */
        ret

/* One 16-byte stub per vector; they push an error code where the CPU does
 * not, then the vector, so trap_dispatch() sees one frame layout. */
        .balign 16
        .globl isr_stubs
isr_stubs:
        vector = 0
        .rept 256
        .balign 16
        .if vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 || vector == 29 || vector == 30
        pushq $vector
        .else
        pushq $0
        pushq $vector
        .endif
        jmp isr_common
        vector = vector + 1
        .endr

isr_common:
        cld
        pushq %rax
        pushq %rbx
        pushq %rcx
        pushq %rdx
        pushq %rsi
        pushq %rdi
        pushq %rbp
        pushq %r8
        pushq %r9
        pushq %r10
        pushq %r11
        pushq %r12
        pushq %r13
        pushq %r14
        pushq %r15
        movq %rsp, %rdi
        call trap_dispatch
        popq %r15
        popq %r14
        popq %r13
        popq %r12
        popq %r11
        popq %r10
        popq %r9
        popq %r8
        popq %rbp
        popq %rdi
        popq %rsi
        popq %rdx
        popq %rcx
        popq %rbx
        popq %rax
        addq $16, %rsp
        iretq

/* The AP trampoline, copied to TRAMPOLINE_ADDR: real mode -> protected
 * mode -> long mode on the BSP's page tables, then ap_start64. */
#define TR(x) (TRAMPOLINE_ADDR + (x) - trampoline_start)
        .globl trampoline_start, trampoline_end, tr_cr3, tr_stack, tr_entry
        .code16
trampoline_start:
        cli
        cld
        movw %cs, %ax
        movw %ax, %ds
        lgdtl tr_gdt_desc - trampoline_start
        movl %cr0, %eax
        orl $CR0_PE, %eax
        movl %eax, %cr0
        ljmpl $GDT_CODE32, $TR(tr_32)
        .code32
tr_32:
        movl $GDT_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %cr4, %eax
        orl $CR4_PAE, %eax
        movl %eax, %cr4
        movl TR(tr_cr3), %eax
        movl %eax, %cr3
        movl $MSR_EFER, %ecx
        rdmsr
        orl $EFER_LME, %eax
        wrmsr
        movl %cr0, %eax
        orl $CR0_PG, %eax
        movl %eax, %cr0
        ljmp $GDT_CODE64, $TR(tr_64)
        .code64
tr_64:
        movq TR(tr_stack), %rsp
        movq TR(tr_entry), %rax
        jmp *%rax
        .balign 8
tr_gdt:
        .quad 0
        .quad 0x00af9a000000ffff        /* GDT_CODE64 */
        .quad 0x00cf92000000ffff        /* GDT_DATA */
        .quad 0x00cf9a000000ffff        /* GDT_CODE32 */
tr_gdt_end:
tr_gdt_desc:
        .word tr_gdt_end - tr_gdt - 1
        .long TR(tr_gdt)
        .balign 8
tr_cr3:   .long 0, 0
tr_stack: .quad 0
tr_entry: .quad 0
trampoline_end:

        .data
        .balign 16
        .globl gdt, gdt_desc
gdt:
        .quad 0
        .quad 0x00af9a000000ffff        /* GDT_CODE64 */
        .quad 0x00cf92000000ffff        /* GDT_DATA */
        .quad 0x00cf9a000000ffff        /* GDT_CODE32 */
        .quad 0x00cff2000000ffff        /* GDT_UDATA, DPL 3 */
        .quad 0x00affa000000ffff        /* GDT_UCODE64, DPL 3 */
        .quad 0, 0                      /* GDT_TSS, filled by cpu_init_bsp() */
gdt_end:
        .balign 8
        .word 0, 0, 0
gdt_desc:
        .word gdt_end - gdt - 1
        .quad gdt

user_saved_rsp: .quad 0

/* PVH entry point for loaders of ELF kernels (QEMU, polyvm, Xen). */
        .section .note.Xen, "a", @note
        .balign 4
        .long 2f - 1f                   /* namesz */
        .long 4f - 3f                   /* descsz */
        .long 18                        /* XEN_ELFNOTE_PHYS32_ENTRY */
1:      .asciz "Xen"
2:      .balign 4
3:      .quad pvh_start
4:      .balign 4

        .bss
        .balign 4096
        .globl boot_pml4, boot_pdpt, boot_pd
boot_pml4: .skip 4096
boot_pdpt: .skip 4096
boot_pd:   .skip 4 * 4096

/* Stacks are not cleared, so they stay out of .bss. */
        .section .stack, "aw", @nobits
        .balign 4096
        .skip BOOT_STACK_SIZE
        .globl boot_stack_top
boot_stack_top:
        .skip TRAP_STACK_SIZE
        .globl trap_stack_top
trap_stack_top:
        .globl ap_stacks
ap_stacks:
        .skip MAX_CPUS * AP_STACK_SIZE
        .globl ap_stacks_end
ap_stacks_end:
