import { HEADER_SIZE, INITIAL_STREAM_WINDOW } from "../yamux/frame.js";

/**
 * The sizes of an agent tunnel, both ends: every WebSocket and yamux limit of the server and the
 * agent SDK derives from these, so a message one end writes always fits what the other reads.
 */

/**
 * Most a tunnel stream's receive window grows to while its reader keeps up: four times yamux's
 * fixed 256 KiB start, for throughput on high-latency links. It bounds what one stream can buffer
 * (streams × this per tunnel) and the largest Data frame a peer may send.
 */
export const TUNNEL_MAX_STREAM_WINDOW = 4 * INITIAL_STREAM_WINDOW;

/**
 * The largest WebSocket message in a tunnel, read or written, either end. Writers pack frames up
 * to it and cut Data frames to fit; readers accept up to it. It holds a full-window Data frame with
 * its header, so a peer that sends each frame as one message (hashicorp/yamux on a net.Conn
 * adapter does) stays within it.
 */
export const TUNNEL_MAX_MESSAGE_BYTES = TUNNEL_MAX_STREAM_WINDOW + HEADER_SIZE;
