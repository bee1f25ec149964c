;; linecount: count the lines of files, in a WASI sandbox.
;;
;;     linecount FILE...
;;
;; Prints "FILE: N lines" for each file as it is counted, then "total: N lines", and writes
;; total=N and files=N to $TOOLRUN_OUTPUT when it is set. A file it cannot read is named on
;; stderr with the reason (outside the folders it may read, no such file, ...) and makes the
;; exit code 1. WASI has no paths of its own: a path is found under the longest preopened
;; folder it starts with ("." for a relative one), the way wasi-libc does it.
;;
;; Built by build.py (wasmtime's wat2wasm); the .wasm beside it is what runs.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; 0-255 scratch (an iovec, results), 256-319 digits, 512-4095 texts, 4096-65535 the
  ;; preopened folders (fd, name, length: 12 bytes each), 65536-131071 the read buffer,
  ;; then the heap (arguments, env, folder names).
  (memory (export "memory") 3)
  (global $heap (mut i32) (i32.const 131072))
  (global $preopens (mut i32) (i32.const 0))
  (global $dir (mut i32) (i32.const -1))
  (global $rel (mut i32) (i32.const 0))
  (global $rel_len (mut i32) (i32.const 0))

  (data (i32.const 512) ": ")                                  ;; 2
  (data (i32.const 520) " lines\n")                            ;; 7
  (data (i32.const 528) "total: ")                             ;; 7
  (data (i32.const 536) "linecount: ")                         ;; 11
  (data (i32.const 548) "usage: linecount FILE...\n")          ;; 25
  (data (i32.const 576) "TOOLRUN_OUTPUT=")                     ;; 15
  (data (i32.const 592) "total=")                              ;; 6
  (data (i32.const 600) "\nfiles=")                            ;; 7
  (data (i32.const 608) "\n")                                  ;; 1
  (data (i32.const 610) ".")                                   ;; 1
  (data (i32.const 640) "outside the folders this tool may read (the sandbox refused it)\n") ;; 64
  (data (i32.const 720) "no such file\n")                      ;; 13
  (data (i32.const 736) "permission denied\n")                 ;; 18
  (data (i32.const 760) "is a folder\n")                       ;; 12
  (data (i32.const 776) "cannot read it (WASI error ")         ;; 27
  (data (i32.const 808) ")\n")                                 ;; 2
  (data (i32.const 816) "cannot write $TOOLRUN_OUTPUT\n")      ;; 29

  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $strlen (param $ptr i32) (result i32)
    (local $end i32)
    (local.set $end (local.get $ptr))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (local.get $end))))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $end) (local.get $ptr)))

  (func $alloc (param $size i32) (result i32)
    (local $ptr i32)
    ;; Aligned to 4: WASI writes pointers into what it is given.
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.const 3)) (i32.const -4)))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (block $enough
      (loop $grow
        (br_if $enough
          (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (local.get $ptr))

  ;; Writes the digits of $value at 256-319; returns where they start (they end at 320).
  (func $digits (param $value i64) (result i32)
    (local $at i32)
    (local.set $at (i32.const 320))
    (loop $next
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i64.store8 (local.get $at)
        (i64.add (i64.const 48) (i64.rem_u (local.get $value) (i64.const 10))))
      (local.set $value (i64.div_u (local.get $value) (i64.const 10)))
      (br_if $next (i64.ne (local.get $value) (i64.const 0))))
    (local.get $at))

  (func $write_number (param $fd i32) (param $value i64)
    (local $at i32)
    (local.set $at (call $digits (local.get $value)))
    (call $write (local.get $fd) (local.get $at) (i32.sub (i32.const 320) (local.get $at))))

  (func $same (param $a i32) (param $b i32) (param $len i32) (result i32)
    (local $i i32)
    (block $differ
      (loop $next
        (if (i32.ge_u (local.get $i) (local.get $len)) (then (return (i32.const 1))))
        (br_if $differ
          (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; The preopened folders: fds from 3 up until one is not a folder of the sandbox.
  (func $load_preopens
    (local $fd i32) (local $len i32) (local $name i32) (local $entry i32)
    (local.set $fd (i32.const 3))
    (block $done
      (loop $next
        (br_if $done (call $fd_prestat_get (local.get $fd) (i32.const 16)))
        (br_if $done (i32.ge_u (global.get $preopens) (i32.const 5000)))
        (local.set $len (i32.load (i32.const 20)))
        (local.set $name (call $alloc (local.get $len)))
        (drop (call $fd_prestat_dir_name (local.get $fd) (local.get $name) (local.get $len)))
        ;; Some runtimes count a trailing NUL, and a "/" ending a name is no part of it.
        (block $trimmed
          (loop $trim
            (br_if $trimmed (i32.le_u (local.get $len) (i32.const 1)))
            (br_if $trimmed
              (i32.and
                (i32.ne (i32.load8_u (i32.add (local.get $name) (i32.sub (local.get $len) (i32.const 1)))) (i32.const 0))
                (i32.ne (i32.load8_u (i32.add (local.get $name) (i32.sub (local.get $len) (i32.const 1)))) (i32.const 47))))
            (local.set $len (i32.sub (local.get $len) (i32.const 1)))
            (br $trim)))
        (local.set $entry (i32.add (i32.const 4096) (i32.mul (global.get $preopens) (i32.const 12))))
        (i32.store (local.get $entry) (local.get $fd))
        (i32.store offset=4 (local.get $entry) (local.get $name))
        (i32.store offset=8 (local.get $entry) (local.get $len))
        (global.set $preopens (i32.add (global.get $preopens) (i32.const 1)))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br $next))))

  ;; Finds the folder a path is under: sets $dir, $rel and $rel_len; 0, or 76 (ENOTCAPABLE)
  ;; when no folder of the sandbox holds it.
  (func $resolve (param $path i32) (param $len i32) (result i32)
    (local $i i32) (local $entry i32) (local $name i32) (local $nlen i32) (local $best i32)
    (local $match i32) (local $absolute i32)
    (local.set $best (i32.const -1))
    (local.set $absolute
      (i32.and (i32.gt_u (local.get $len) (i32.const 0))
               (i32.eq (i32.load8_u (local.get $path)) (i32.const 47))))
    (global.set $dir (i32.const -1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $preopens)))
        (local.set $entry (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 12))))
        (local.set $name (i32.load offset=4 (local.get $entry)))
        (local.set $nlen (i32.load offset=8 (local.get $entry)))
        (local.set $match (i32.const -1))
        (if (i32.and (i32.eq (local.get $nlen) (i32.const 1))
                     (i32.eq (i32.load8_u (local.get $name)) (i32.const 46)))
          (then (if (i32.eqz (local.get $absolute)) (then (local.set $match (i32.const 0)))))
          (else
            (if (i32.and (local.get $absolute)
                  (i32.and (i32.le_u (local.get $nlen) (local.get $len))
                           (call $same (local.get $path) (local.get $name) (local.get $nlen))))
              (then
                (if (i32.or (i32.eq (local.get $nlen) (local.get $len))
                      (i32.or (i32.eq (local.get $nlen) (i32.const 1))
                              (i32.eq (i32.load8_u (i32.add (local.get $path) (local.get $nlen)))
                                      (i32.const 47))))
                  (then (local.set $match (local.get $nlen))))))))
        (if (i32.gt_s (local.get $match) (local.get $best))
          (then
            (local.set $best (local.get $match))
            (global.set $dir (i32.load (local.get $entry)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (i32.lt_s (local.get $best) (i32.const 0)) (then (return (i32.const 76))))
    (global.set $rel (i32.add (local.get $path) (local.get $best)))
    (global.set $rel_len (i32.sub (local.get $len) (local.get $best)))
    (block $bare
      (loop $slash
        (br_if $bare (i32.eqz (global.get $rel_len)))
        (br_if $bare (i32.ne (i32.load8_u (global.get $rel)) (i32.const 47)))
        (global.set $rel (i32.add (global.get $rel) (i32.const 1)))
        (global.set $rel_len (i32.sub (global.get $rel_len) (i32.const 1)))
        (br $slash)))
    (if (i32.eqz (global.get $rel_len))
      (then (global.set $rel (i32.const 610)) (global.set $rel_len (i32.const 1))))
    (i32.const 0))

  ;; Opens a path: the fd in memory at 12; returns the WASI error (0: none).
  (func $open (param $path i32) (param $len i32) (param $oflags i32) (param $rights i64)
        (result i32)
    (local $error i32)
    (local.set $error (call $resolve (local.get $path) (local.get $len)))
    (if (local.get $error) (then (return (local.get $error))))
    (call $path_open (global.get $dir) (i32.const 1) (global.get $rel) (global.get $rel_len)
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 12)))

  (func $complain (param $path i32) (param $len i32) (param $error i32)
    (call $write (i32.const 2) (i32.const 536) (i32.const 11))
    (call $write (i32.const 2) (local.get $path) (local.get $len))
    (call $write (i32.const 2) (i32.const 512) (i32.const 2))
    (if (i32.or (i32.eq (local.get $error) (i32.const 76)) (i32.eq (local.get $error) (i32.const 63)))
      (then (call $write (i32.const 2) (i32.const 640) (i32.const 64)) (return)))
    (if (i32.eq (local.get $error) (i32.const 44))
      (then (call $write (i32.const 2) (i32.const 720) (i32.const 13)) (return)))
    (if (i32.eq (local.get $error) (i32.const 2))
      (then (call $write (i32.const 2) (i32.const 736) (i32.const 18)) (return)))
    (if (i32.eq (local.get $error) (i32.const 31))
      (then (call $write (i32.const 2) (i32.const 760) (i32.const 12)) (return)))
    (call $write (i32.const 2) (i32.const 776) (i32.const 27))
    (call $write_number (i32.const 2) (i64.extend_i32_u (local.get $error)))
    (call $write (i32.const 2) (i32.const 808) (i32.const 2)))

  ;; Counts the lines of an open file (a last line without "\n" counts); -1 on a read error.
  (func $count (param $fd i32) (result i64)
    (local $lines i64) (local $read i32) (local $i i32) (local $last i32)
    (local.set $last (i32.const 10))
    (block $eof
      (loop $chunk
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (if (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 40))
          (then (return (i64.const -1))))
        (local.set $read (i32.load (i32.const 40)))
        (br_if $eof (i32.eqz (local.get $read)))
        (local.set $i (i32.const 0))
        (loop $byte
          (local.set $last (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
          (if (i32.eq (local.get $last) (i32.const 10))
            (then (local.set $lines (i64.add (local.get $lines) (i64.const 1)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $byte (i32.lt_u (local.get $i) (local.get $read))))
        (br $chunk)))
    (if (result i64) (i32.ne (local.get $last) (i32.const 10))
      (then (i64.add (local.get $lines) (i64.const 1)))
      (else (local.get $lines))))

  ;; $TOOLRUN_OUTPUT's value (its address, its length at 44), or 0 when it is not set.
  (func $output_path (result i32)
    (local $count i32) (local $pointers i32) (local $i i32) (local $entry i32)
    (drop (call $environ_sizes_get (i32.const 32) (i32.const 36)))
    (local.set $count (i32.load (i32.const 32)))
    (local.set $pointers (call $alloc (i32.mul (local.get $count) (i32.const 4))))
    (drop (call $environ_get (local.get $pointers) (call $alloc (i32.load (i32.const 36)))))
    (block $none
      (loop $next
        (br_if $none (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $entry (i32.load (i32.add (local.get $pointers) (i32.mul (local.get $i) (i32.const 4)))))
        (if (i32.and (i32.ge_u (call $strlen (local.get $entry)) (i32.const 15))
                     (call $same (local.get $entry) (i32.const 576) (i32.const 15)))
          (then
            (i32.store (i32.const 44) (i32.sub (call $strlen (local.get $entry)) (i32.const 15)))
            (return (i32.add (local.get $entry) (i32.const 15)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  (func $write_outputs (param $total i64) (param $files i64) (result i32)
    (local $path i32) (local $fd i32)
    (local.set $path (call $output_path))
    (if (i32.eqz (local.get $path)) (then (return (i32.const 0))))
    ;; O_CREAT | O_TRUNC, with the right to write (fd_write: 1 << 6).
    (if (call $open (local.get $path) (i32.load (i32.const 44)) (i32.const 9) (i64.const 64))
      (then (call $write (i32.const 2) (i32.const 536) (i32.const 11))
            (call $write (i32.const 2) (i32.const 816) (i32.const 29))
            (return (i32.const 1))))
    (local.set $fd (i32.load (i32.const 12)))
    (call $write (local.get $fd) (i32.const 592) (i32.const 6))
    (call $write_number (local.get $fd) (local.get $total))
    (call $write (local.get $fd) (i32.const 600) (i32.const 7))
    (call $write_number (local.get $fd) (local.get $files))
    (call $write (local.get $fd) (i32.const 608) (i32.const 1))
    (drop (call $fd_close (local.get $fd)))
    (i32.const 0))

  (func (export "_start")
    (local $argc i32) (local $argv i32) (local $i i32) (local $arg i32) (local $len i32)
    (local $error i32) (local $fd i32) (local $lines i64) (local $total i64) (local $failed i32)
    (local $files i64)
    (drop (call $args_sizes_get (i32.const 24) (i32.const 28)))
    (local.set $argc (i32.load (i32.const 24)))
    (if (i32.lt_u (local.get $argc) (i32.const 2))
      (then (call $write (i32.const 2) (i32.const 548) (i32.const 25))
            (call $proc_exit (i32.const 2))))
    (local.set $argv (call $alloc (i32.mul (local.get $argc) (i32.const 4))))
    (drop (call $args_get (local.get $argv) (call $alloc (i32.load (i32.const 28)))))
    (call $load_preopens)
    (local.set $i (i32.const 1))
    (loop $next
      (local.set $arg (i32.load (i32.add (local.get $argv) (i32.mul (local.get $i) (i32.const 4)))))
      (local.set $len (call $strlen (local.get $arg)))
      ;; Read-only, with the right to read (fd_read: 1 << 1).
      (local.set $error (call $open (local.get $arg) (local.get $len) (i32.const 0) (i64.const 2)))
      (if (local.get $error)
        (then (call $complain (local.get $arg) (local.get $len) (local.get $error))
              (local.set $failed (i32.const 1)))
        (else
          (local.set $fd (i32.load (i32.const 12)))
          (local.set $lines (call $count (local.get $fd)))
          (drop (call $fd_close (local.get $fd)))
          (if (i64.lt_s (local.get $lines) (i64.const 0))
            (then (call $complain (local.get $arg) (local.get $len) (i32.const 31))
                  (local.set $failed (i32.const 1)))
            (else
              (call $write (i32.const 1) (local.get $arg) (local.get $len))
              (call $write (i32.const 1) (i32.const 512) (i32.const 2))
              (call $write_number (i32.const 1) (local.get $lines))
              (call $write (i32.const 1) (i32.const 520) (i32.const 7))
              (local.set $total (i64.add (local.get $total) (local.get $lines)))
              (local.set $files (i64.add (local.get $files) (i64.const 1)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (local.get $argc))))
    (call $write (i32.const 1) (i32.const 528) (i32.const 7))
    (call $write_number (i32.const 1) (local.get $total))
    (call $write (i32.const 1) (i32.const 520) (i32.const 7))
    (if (call $write_outputs (local.get $total) (local.get $files))
      (then (local.set $failed (i32.const 1))))
    (call $proc_exit (local.get $failed)))
)
