;; A minimal WASI preview1 command: prints "Hello from Quickbeam!" and exits.
;;
;; Hand-written WebAssembly text; no build step needed.
(module
  ;; fd_write(fd, iovs, iovs_len, nwritten_out) -> errno
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; The message, 22 bytes, at offset 16.
  (data (i32.const 16) "Hello from Quickbeam!\n")

  (func $start (export "_start")
    ;; One iovec at offset 0: { buf = 16, buf_len = 22 }.
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 22))
    ;; Write it to stdout (fd 1); the number of bytes written goes to offset 8.
    (drop
      (call $fd_write
        (i32.const 1)   ;; fd: stdout
        (i32.const 0)   ;; iovs
        (i32.const 1)   ;; iovs_len
        (i32.const 8))) ;; nwritten
  )
)
