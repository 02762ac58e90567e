{
  "targets": [
    {
      "target_name": "warren_spawn",
      "sources": ["native/spawn.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
