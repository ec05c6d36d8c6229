{
  # Lilith's libbpf N-API addon. Thin by design: every call returns a value or
  # -errno; bpf/loader.ts turns errors into BpfError. libbpf comes from Debian
  # (libbpf-dev 1.1) through pkg-config, so no vendored copy drifts from the system.
  "targets": [
    {
      "target_name": "lilith_bpf",
      "sources": [
        "src/addon.cc",
        "src/log.cc",
        "src/object.cc",
        "src/link.cc",
        "src/map.cc",
        "src/ringbuf.cc",
        "src/sys.cc"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include_dir\")"
      ],
      "cflags": ["<!@(pkg-config --cflags libbpf)"],
      "libraries": ["<!@(pkg-config --libs libbpf)", "-lelf", "-lz"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
