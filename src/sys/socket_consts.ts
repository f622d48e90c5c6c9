// Socket constants (Linux; the same on x86_64 and arm64), shared by every
// bun:ffi wrapper that opens a socket.
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;

// errno values the socket wrappers retry or wait on.
export const EINTR = 4;
export const EAGAIN = 11;
export const EINPROGRESS = 115;
