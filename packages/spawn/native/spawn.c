/*
 * warren_spawn: starts a child process with posix_spawn(3) and watches its exit through a pidfd
 * polled on Node's event loop, so that the parent's page tables are never copied (glibc's
 * posix_spawn uses clone(CLONE_VM | CLONE_VFORK): the parent thread waits for the child's exec,
 * whatever the parent's size). See src/index.ts for the JavaScript side.
 *
 * Exports (all synchronous):
 *   spawn(path, argv[], envp[], cwd|null, detached, fds Int32Array, onExit(code|null, signo|null))
 *     -> [pid, handle] on success, [-errno, null] when posix_spawn or the exec failed.
 *     fds[i] is the parent descriptor child fd i gets (dup2), or -1: fds 0..2 get /dev/null,
 *     higher ones are closed. Every descriptor from fds.length up is closed in the child.
 *     `path` is searched in the colon-separated `searchPath` when it has no slash (execvp rules).
 *   kill(handle, signo) -> 0 or -errno (-ESRCH once reaped): pidfd_send_signal(2).
 *   pipe() -> [readFd, writeFd] (pipe2 with O_CLOEXEC); throws on failure.
 *   probe() -> 0 when pidfd_open(2) works here, else -errno.
 *
 * Reaping: waitpid(pid, WNOHANG) once the pidfd is readable. libuv (1.46 in Node 20) reaps only
 * the pids of its own uv_process_t handles (waitpid(process->pid, ...) in uv__wait_children), so it
 * never takes one of ours, and we never take one of its.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define CHECK(call)                                        \
  do {                                                     \
    if ((call) != napi_ok) return throw_last(env, #call);  \
  } while (0)

typedef struct child {
  uv_poll_t poll;
  napi_env env;
  pid_t pid;
  int pidfd;
  int reaped;
  /* Owners: the poll handle (until closed) and the JavaScript handle (until collected). */
  int refs;
  napi_ref on_exit;
  napi_async_context context;
  struct child* next;
  struct child* prev;
  struct watch_list* list;
} child_t;

/* The children being watched in one Node environment (its instance data), for its cleanup hook. */
typedef struct watch_list {
  child_t* head;
} watch_list_t;

static napi_value throw_last(napi_env env, const char* what) {
  const napi_extended_error_info* info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, info && info->error_message ? info->error_message : what);
  return NULL;
}

static void release(child_t* c) {
  if (--c->refs == 0) free(c);
}

static void unlink_child(child_t* c) {
  if (c->prev) c->prev->next = c->next;
  else if (c->list->head == c) c->list->head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

static void on_closed(uv_handle_t* handle) {
  release((child_t*)handle->data);
}

static void finalize_handle(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  release((child_t*)data);
}

/* Stops watching: the poll handle is closed, the pidfd with it, the callback and context dropped. */
static void stop_watching(child_t* c) {
  unlink_child(c);
  uv_poll_stop(&c->poll);
  uv_close((uv_handle_t*)&c->poll, on_closed);
  close(c->pidfd);
  c->pidfd = -1;
}

static void on_readable(uv_poll_t* handle, int status, int events) {
  (void)events;
  child_t* c = (child_t*)handle->data;
  int wstatus = 0;
  pid_t got;
  do got = waitpid(c->pid, &wstatus, WNOHANG);
  while (got == -1 && errno == EINTR);
  if (got == 0 && status == 0) return; /* not yet a zombie: keep polling */
  c->reaped = 1;
  napi_env env = c->env;
  napi_ref on_exit = c->on_exit;
  napi_async_context context = c->context;
  c->on_exit = NULL;
  c->context = NULL;
  stop_watching(c);

  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv, args[2];
  napi_get_reference_value(env, on_exit, &callback);
  napi_get_global(env, &recv); /* napi_make_callback wants an object */
  if (got == c->pid && WIFEXITED(wstatus)) {
    napi_create_int32(env, WEXITSTATUS(wstatus), &args[0]);
    napi_get_null(env, &args[1]);
  } else if (got == c->pid && WIFSIGNALED(wstatus)) {
    napi_get_null(env, &args[0]);
    napi_create_int32(env, WTERMSIG(wstatus), &args[1]);
  } else {
    /* Reaped by someone else (ECHILD) or a poll error: the status is unknown. */
    napi_get_null(env, &args[0]);
    napi_get_null(env, &args[1]);
  }
  if (callback != NULL) {
    napi_status called = napi_make_callback(env, context, recv, callback, 2, args, NULL);
    if (called == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  napi_delete_reference(env, on_exit);
  napi_async_destroy(env, context);
  napi_close_handle_scope(env, scope);
}

/* The environment ends (the process exits or a worker stops): its children are no longer watched. */
static void cleanup_hook(void* arg) {
  watch_list_t* list = (watch_list_t*)arg;
  while (list->head != NULL) {
    child_t* c = list->head;
    if (c->on_exit) napi_delete_reference(c->env, c->on_exit);
    if (c->context) napi_async_destroy(c->env, c->context);
    c->on_exit = NULL;
    c->context = NULL;
    stop_watching(c);
  }
}

static char* get_string(napi_env env, napi_value value) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char* text = malloc(length + 1);
  if (text == NULL) return NULL;
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  return text;
}

/* A NULL-terminated copy of an array of strings, or NULL (with an exception pending). */
static char** get_strings(napi_env env, napi_value array) {
  uint32_t count = 0;
  if (napi_get_array_length(env, array, &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an array of strings");
    return NULL;
  }
  char** list = calloc(count + 1, sizeof(char*));
  if (list == NULL) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    napi_get_element(env, array, i, &item);
    list[i] = get_string(env, item);
    if (list[i] == NULL) {
      for (uint32_t j = 0; j < i; j++) free(list[j]);
      free(list);
      napi_throw_type_error(env, NULL, "expected an array of strings");
      return NULL;
    }
  }
  return list;
}

static void free_strings(char** list) {
  if (list == NULL) return;
  for (char** p = list; *p != NULL; p++) free(*p);
  free(list);
}

static int spawn_one(pid_t* pid, const char* path, posix_spawn_file_actions_t* actions, posix_spawnattr_t* attr, char** argv, char** envp) {
  return posix_spawn(pid, path, actions, attr, argv, envp);
}

/*
 * posix_spawn of `file`, or of the first `dir/file` of `search` that can be executed when `file`
 * has no slash (execvp(3) rules: ENOENT, ENOTDIR and EACCES go on to the next directory; EACCES
 * is the answer when no directory had it). Returns 0 or an errno value.
 */
static int spawn_searching(pid_t* pid, const char* file, const char* search, posix_spawn_file_actions_t* actions, posix_spawnattr_t* attr, char** argv, char** envp) {
  if (strchr(file, '/') != NULL || search == NULL) return spawn_one(pid, file, actions, attr, argv, envp);
  size_t file_length = strlen(file);
  int denied = 0;
  const char* dir = search;
  for (;;) {
    const char* end = strchr(dir, ':');
    size_t dir_length = end ? (size_t)(end - dir) : strlen(dir);
    char* candidate = malloc(dir_length + file_length + 3);
    if (candidate == NULL) return ENOMEM;
    if (dir_length == 0) {
      memcpy(candidate, file, file_length + 1);
    } else {
      memcpy(candidate, dir, dir_length);
      candidate[dir_length] = '/';
      memcpy(candidate + dir_length + 1, file, file_length + 1);
    }
    int error = access(candidate, X_OK) == 0 ? spawn_one(pid, candidate, actions, attr, argv, envp) : errno;
    free(candidate);
    if (error == 0) return 0;
    if (error == EACCES) denied = 1;
    else if (error != ENOENT && error != ENOTDIR) return error;
    if (end == NULL) break;
    dir = end + 1;
  }
  return denied ? EACCES : ENOENT;
}

static napi_value result_pair(napi_env env, int32_t first, napi_value second) {
  napi_value pair, number;
  if (napi_create_array_with_length(env, 2, &pair) != napi_ok) return NULL;
  napi_create_int32(env, first, &number);
  napi_set_element(env, pair, 0, number);
  if (second == NULL) napi_get_null(env, &second);
  napi_set_element(env, pair, 1, second);
  return pair;
}

static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value args[8];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "spawn(file, searchPath, argv, envp, cwd, detached, fds, onExit)");
    return NULL;
  }
  napi_valuetype type;
  char* file = get_string(env, args[0]);
  napi_typeof(env, args[1], &type);
  char* search = type == napi_string ? get_string(env, args[1]) : NULL;
  char** argv = get_strings(env, args[2]);
  char** envp = argv ? get_strings(env, args[3]) : NULL;
  napi_typeof(env, args[4], &type);
  char* cwd = type == napi_string ? get_string(env, args[4]) : NULL;
  bool detached = false;
  napi_get_value_bool(env, args[5], &detached);
  napi_typedarray_type array_type;
  size_t count = 0;
  void* data = NULL;
  bool is_array = false;
  napi_is_typedarray(env, args[6], &is_array);
  if (is_array) napi_get_typedarray_info(env, args[6], &array_type, &count, &data, NULL, NULL);
  napi_typeof(env, args[7], &type);
  napi_value result = NULL;
  if (file == NULL || argv == NULL || envp == NULL || !is_array || array_type != napi_int32_array || type != napi_function) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_type_error(env, NULL, "spawn: bad arguments");
    goto done;
  }
  const int32_t* fds = (const int32_t*)data;
  int* high = calloc(count ? count : 1, sizeof(int));
  if (high == NULL) {
    result = result_pair(env, -ENOMEM, NULL);
    goto done;
  }
  for (size_t i = 0; i < count; i++) high[i] = -1;
  int error = 0;
  /* Every source is first moved to a descriptor >= count, so that no dup2 of the child clobbers
   * another's source (the copies are close-on-exec: they do not reach the program). */
  for (size_t i = 0; i < count && error == 0; i++) {
    if (fds[i] < 0) continue;
    high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, (int)count);
    if (high[i] < 0) error = errno;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  sigset_t all, none;
  /* Every bit, glibc's internal signals (32, 33) too: sigfillset leaves them out, and glibc's
   * posix_spawn then sets them to SIG_IGN in the child, which the program would inherit. */
  memset(&all, 0xff, sizeof all);
  sigemptyset(&none);
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  for (size_t i = 0; i < count && error == 0; i++) {
    if (high[i] >= 0) error = posix_spawn_file_actions_adddup2(&actions, high[i], (int)i);
    else if (i <= 2) error = posix_spawn_file_actions_addopen(&actions, (int)i, "/dev/null", O_RDWR, 0);
    else error = posix_spawn_file_actions_addclose(&actions, (int)i);
  }
  if (error == 0) error = posix_spawn_file_actions_addclosefrom_np(&actions, (int)count);
  if (error == 0 && cwd != NULL) error = posix_spawn_file_actions_addchdir_np(&actions, cwd);
  /* Node ignores SIGPIPE (and may have other dispositions or a mask); the child starts clean, as
   * libuv's children do. */
  short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (detached ? POSIX_SPAWN_SETSID : 0);
  if (error == 0) error = posix_spawnattr_setsigdefault(&attr, &all);
  if (error == 0) error = posix_spawnattr_setsigmask(&attr, &none);
  if (error == 0) error = posix_spawnattr_setflags(&attr, flags);
  pid_t pid = -1;
  if (error == 0) error = spawn_searching(&pid, file, search, &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  for (size_t i = 0; i < count; i++)
    if (high[i] >= 0) close(high[i]);
  free(high);
  if (error != 0) {
    result = result_pair(env, -error, NULL);
    goto done;
  }

  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    /* Nothing could watch it: it must not run unwatched. */
    int open_error = errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {
    }
    result = result_pair(env, -open_error, NULL);
    goto done;
  }
  child_t* c = calloc(1, sizeof(child_t));
  uv_loop_t* loop = NULL;
  napi_value name, handle;
  if (c == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &c->poll, pidfd) != 0) {
    free(c);
    close(pidfd);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) == -1 && errno == EINTR) {
    }
    napi_throw_error(env, NULL, "spawn: cannot watch the child's pidfd");
    goto done;
  }
  c->env = env;
  c->pid = pid;
  c->pidfd = pidfd;
  c->refs = 2;
  c->poll.data = c;
  napi_create_string_utf8(env, "WarrenSpawnedProcess", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &c->context);
  napi_create_reference(env, args[7], 1, &c->on_exit);
  watch_list_t* list = NULL;
  napi_get_instance_data(env, (void**)&list);
  c->list = list;
  c->next = list->head;
  if (list->head) list->head->prev = c;
  list->head = c;
  uv_poll_start(&c->poll, UV_READABLE, on_readable);
  napi_create_external(env, c, finalize_handle, NULL, &handle);
  result = result_pair(env, pid, handle);

done:
  free(file);
  free(search);
  free(cwd);
  free_strings(argv);
  free_strings(envp);
  return result;
}

static napi_value js_kill(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2], result;
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  void* data = NULL;
  int32_t signo = 0;
  if (argc < 2 || napi_get_value_external(env, args[0], &data) != napi_ok || napi_get_value_int32(env, args[1], &signo) != napi_ok) {
    napi_throw_type_error(env, NULL, "kill(handle, signo)");
    return NULL;
  }
  child_t* c = (child_t*)data;
  int outcome = 0;
  if (c->reaped || c->pidfd < 0) outcome = -ESRCH;
  else if (syscall(SYS_pidfd_send_signal, c->pidfd, signo, NULL, 0) != 0) outcome = -errno;
  CHECK(napi_create_int32(env, outcome, &result));
  return result;
}

static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) != 0) {
    char code[16];
    snprintf(code, sizeof code, "%d", errno);
    napi_throw_error(env, code, strerror(errno));
    return NULL;
  }
  napi_value pair, fd;
  CHECK(napi_create_array_with_length(env, 2, &pair));
  for (uint32_t i = 0; i < 2; i++) {
    napi_create_int32(env, ends[i], &fd);
    napi_set_element(env, pair, i, fd);
  }
  return pair;
}

static napi_value js_probe(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  int outcome = fd >= 0 ? 0 : -errno;
  if (fd >= 0) close(fd);
  napi_value result;
  CHECK(napi_create_int32(env, outcome, &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor properties[] = {
      {"spawn", NULL, js_spawn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"kill", NULL, js_kill, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pipe", NULL, js_pipe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"probe", NULL, js_probe, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) return NULL;
  watch_list_t* list = calloc(1, sizeof(watch_list_t));
  if (list == NULL || napi_set_instance_data(env, list, NULL, NULL) != napi_ok) return NULL;
  napi_add_env_cleanup_hook(env, cleanup_hook, list);
  return exports;
}
