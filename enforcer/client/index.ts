// The client room's front door: requests to a running enforcer's admin socket.
export { adminGet, adminPost, DEFAULT_ADMIN_SOCKET } from './admin-client.js';
