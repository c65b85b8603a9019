# Startup code for wasm32-wasip1/-wasip2 commands, assembled by scripts/build-guests.sh
# with llvm-mc into crt1-command.o, which is found before wasi-libc's own.
# Debian 12's wasi-libc (2022) ships a crt1-command.o whose _start never calls
# __wasm_call_ctors, so wasm-ld wraps every export (cabi_realloc included) in
# ctors/dtors; on wasip2 that re-runs the preopen constructor inside cabi_realloc and
# the guest traps "cannot leave component instance" at its first std::env::args().
	.functype	_start () -> ()
	.export_name	_start, _start
	.functype	__wasm_call_ctors () -> ()
	.functype	__main_void () -> (i32)
	.functype	__wasm_call_dtors () -> ()
	.functype	__wasi_proc_exit (i32) -> ()
	.section	.text._start,"",@
	.hidden	_start
	.globl	_start
	.type	_start,@function
_start:
	.functype	_start () -> ()
	.local  	i32
	call	__wasm_call_ctors
	call	__main_void
	local.set	0
	call	__wasm_call_dtors
	block
	local.get	0
	i32.eqz
	br_if   	0
	local.get	0
	call	__wasi_proc_exit
	unreachable
	end_block
	end_function
	.no_dead_strip	_start
