/** The part of a WebSocket a keepalive drives. */
export interface PingableSocket {
  ping(): void;
  on(event: "pong" | "close", listener: () => void): unknown;
  off(event: "pong" | "close", listener: () => void): unknown;
}

/**
 * Pings a WebSocket every `intervalMs` and calls `onTimeout` once when no pong came for
 * `timeoutMs`, so a peer whose network vanished without a close is noticed. Stops by itself when
 * the socket closes; returns a stop function too.
 */
export function keepAlive(socket: PingableSocket, intervalMs: number, timeoutMs: number, onTimeout: () => void): () => void {
  let lastPong = performance.now();
  const onPong = () => (lastPong = performance.now());
  const timer = setInterval(() => {
    if (performance.now() - lastPong > timeoutMs) {
      stop();
      onTimeout();
      return;
    }
    try {
      socket.ping();
    } catch {
      // Closing already: the close listener stops the loop.
    }
  }, intervalMs);
  timer.unref();
  const stop = () => {
    clearInterval(timer);
    socket.off("pong", onPong);
    socket.off("close", stop);
  };
  socket.on("pong", onPong);
  socket.on("close", stop);
  return stop;
}
