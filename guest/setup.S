/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bzImage setup sectors: the Linux boot protocol header (2.15) and a
 * real-mode entry for loaders that use it (QEMU's -kernel, GRUB's linux16).
 * Like Linux's setup code it fills boot_params (e820 from the BIOS), then
 * goes to long mode with an identity map of 4 GiB and enters the kernel's
 * 64-bit entry at code32_start + 0x200 with RSI = boot_params, the same way
 * a 64-bit boot protocol loader such as polyvm does.
 * mkbzimage.py fills setup_sects, syssize and init_size. Linked at 0. */

#define BP_OFF 0x3000   /* our boot_params, in the setup segment */
#define PT_OFF 0x4000   /* 6 pages of page tables (+1 for alignment) */
#define STACK_TOP 0xf000
#define KERNEL_ADDR 0x100000
#define KERNEL_ENTRY64 (KERNEL_ADDR + 0x200)

#define SEL_CODE32 0x08
#define SEL_DATA 0x10
#define SEL_CODE64 0x18

        .code16
        .text
        .globl _start
_start:
        /* Not a boot sector: a BIOS that boots it just halts. */
        cli
1:      hlt
        jmp 1b

        .org 0x1f1
setup_sects:    .byte 0                 /* patched */
root_flags:     .word 0
syssize:        .long 0                 /* patched: 16-byte units */
ram_size:       .word 0
vid_mode:       .word 0xffff            /* NORMAL_VGA */
root_dev:       .word 0
boot_flag:      .word 0xaa55

        .org 0x200
        .byte 0xeb, start_of_setup - 1f /* jmp start_of_setup */
1:      .ascii "HdrS"
version:        .word 0x020f
realmode_swtch: .long 0
start_sys_seg:  .word 0x1000
kernel_version: .word kernel_version_str - 0x200
type_of_loader: .byte 0
loadflags:      .byte 0x01              /* LOADED_HIGH */
setup_move_size: .word 0x8000
code32_start:   .long KERNEL_ADDR
ramdisk_image:  .long 0
ramdisk_size:   .long 0
bootsect_kludge: .long 0
heap_end_ptr:   .word 0
ext_loader_ver: .byte 0
ext_loader_type: .byte 0
cmd_line_ptr:   .long 0
initrd_addr_max: .long 0x7fffffff
kernel_alignment: .long 0x100000       /* not relocatable: pref_address */
relocatable_kernel: .byte 0
min_alignment:  .byte 12
xloadflags:     .word 0x0001            /* XLF_KERNEL_64 */
cmdline_size:   .long 4095
hardware_subarch: .long 0
hardware_subarch_data: .quad 0
payload_offset: .long 0
payload_length: .long 0
setup_data:     .quad 0
pref_address:   .quad KERNEL_ADDR
init_size:      .long 0                 /* patched */
handover_offset: .long 0
kernel_info_offset: .long 0x1e0         /* head.S */
hdr_end:

kernel_version_str:
        .asciz "polyvm-testguest 0.1"

/* The loader enters at setup segment + 0x20 : 0 with DS = setup segment. */
start_of_setup:
        cli
        cld
        movw %ds, %ax
        movw %ax, %es
        movw %ax, %ss
        movw $STACK_TOP, %sp
        pushw %ax
        pushw $1f
        lretw                           /* CS = DS: offsets are from _start */
1:
        /* boot_params: zeroed, with the setup header as the loader left it
         * (cmd_line_ptr and friends). */
        movw $BP_OFF, %di
        xorw %ax, %ax
        movw $2048, %cx
        rep stosw
        movw $0x1f1, %si
        movw $(BP_OFF + 0x1f1), %di
        movw $(hdr_end - 0x1f1), %cx
        rep movsb

        /* The e820 map from the BIOS, as Linux's detect_memory_e820(). */
        xorl %ebx, %ebx
        movw $(BP_OFF + 0x2d0), %di
2:      movl $0xe820, %eax
        movl $0x534d4150, %edx          /* "SMAP" */
        movl $20, %ecx
        int $0x15
        jc 3f
        cmpl $0x534d4150, %eax
        jne 3f
        incb BP_OFF + 0x1e8             /* e820_entries */
        addw $20, %di
        testl %ebx, %ebx
        jz 3f
        cmpb $128, BP_OFF + 0x1e8
        jb 2b
3:
        cli
        /* Fast A20 gate. */
        inb $0x92, %al
        orb $2, %al
        andb $0xfe, %al
        outb %al, $0x92

        /* Linear base of the setup segment, to fix up the GDT and jumps. */
        xorl %ebx, %ebx
        movw %ds, %bx
        shll $4, %ebx
        leal gdt(%ebx), %eax
        movl %eax, gdt_desc + 2
        leal pm32(%ebx), %eax
        movl %eax, pm32_ptr
        lgdtl gdt_desc
        movl %cr0, %eax
        orl $1, %eax
        movl %eax, %cr0
        ljmpl *pm32_ptr

        .code32
pm32:
        movl $SEL_DATA, %eax
        movl %eax, %ds
        movl %eax, %es
        movl %eax, %ss
        movl %eax, %fs
        movl %eax, %gs
        leal STACK_TOP(%ebx), %esp

        /* Identity map 0..4 GiB in 2 MiB pages. */
        leal (PT_OFF + 4095)(%ebx), %edx
        andl $~4095, %edx
        movl %edx, %edi
        movl $(6 * 1024), %ecx
        xorl %eax, %eax
        rep stosl
        leal 0x1007(%edx), %eax
        movl %eax, (%edx)               /* PML4[0] -> PDPT */
        leal 0x2007(%edx), %eax
        leal 0x1000(%edx), %edi
        movl $4, %ecx
4:      movl %eax, (%edi)               /* PDPT[0..3] -> PD */
        addl $0x1000, %eax
        addl $8, %edi
        loop 4b
        leal 0x2000(%edx), %edi
        movl $0x87, %eax
        movl $2048, %ecx
5:      movl %eax, (%edi)
        addl $0x200000, %eax
        addl $8, %edi
        loop 5b

        movl %cr4, %eax
        orl $0x20, %eax                 /* PAE */
        movl %eax, %cr4
        movl %edx, %cr3
        movl $0xc0000080, %ecx          /* EFER.LME */
        rdmsr
        orl $0x100, %eax
        wrmsr
        leal BP_OFF(%ebx), %esi
        leal pm64(%ebx), %eax
        movl %cr0, %ecx
        orl $0x80000000, %ecx           /* PG: now in compatibility mode */
        movl %ecx, %cr0
        pushl $SEL_CODE64
        pushl %eax
        lretl

        .code64
pm64:
        movl %esi, %esi
        movl $KERNEL_ENTRY64, %eax
        jmp *%rax

        .balign 8
gdt:
        .quad 0
        .quad 0x00cf9a000000ffff        /* SEL_CODE32 */
        .quad 0x00cf92000000ffff        /* SEL_DATA */
        .quad 0x00af9a000000ffff        /* SEL_CODE64 */
gdt_end:
gdt_desc:
        .word gdt_end - gdt - 1
        .long 0                         /* linear address, set at run time */
pm32_ptr:
        .long 0                         /* linear address, set at run time */
        .word SEL_CODE32

        .balign 512
