// @eulerstream/euler-websocket-sdk 0.0.6, unmodified, against livegate's GET /webcast/events.
// Env: EULER_WS_URL (ws://<livegate>/webcast/events: the SDK reads it when it loads),
// UNIQUE_ID, API_KEY or JWT_KEY. Prints one JSON object per line: {"event": "roomInfo"|"chat"|"close"|...}.
// The URL comes from the SDK's createWebSocketUrl, the socket is `ws`, binary frames go through
// deserializeWebSocketMessage. Exits once the socket closes; after a chat whose text is
// WANT_CHAT, it closes the socket itself (1000).
import sdk from '@eulerstream/euler-websocket-sdk';
import WebSocket from 'ws';

const { createWebSocketUrl, deserializeWebSocketMessage, ClientCloseCode, SchemaVersion } = sdk;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const { UNIQUE_ID, API_KEY, JWT_KEY, WANT_CHAT } = process.env;
const deadline = setTimeout(() => { out({ event: 'timeout' }); process.exit(2); }, 25000);

// An undefined key is left out of the query by the SDK itself.
const url = createWebSocketUrl({ uniqueId: UNIQUE_ID, apiKey: API_KEY, jwtKey: JWT_KEY });
out({ event: 'url', url: url.replace(API_KEY || JWT_KEY, 'KEY') });
const ws = new WebSocket(url);

ws.on('message', (data, isBinary) => {
    if (!isBinary) {
        const message = JSON.parse(data.toString());
        if (message.type === 'roomInfo') {
            out({ event: 'roomInfo', roomId: String(message.data.id_str ?? message.data.id) });
        } else {
            out({ event: 'text', type: message.type ?? null });
        }
        return;
    }
    const frame = deserializeWebSocketMessage(new Uint8Array(data), SchemaVersion.v2);
    for (const message of frame.protoMessageFetchResult?.messages ?? []) {
        const decoded = message.decodedData;
        if (decoded?.type !== 'WebcastChatMessage') continue;
        const text = decoded.data.comment;
        out({ event: 'chat', comment: text, user: decoded.data.user?.uniqueId ?? null });
        if (text === WANT_CHAT) ws.close(ClientCloseCode.NORMAL);
    }
});
ws.on('close', (code, reason) => {
    clearTimeout(deadline);
    out({ event: 'close', code, reason: reason.toString(), name: ClientCloseCode[code] ?? null });
    process.exit(0);
});
ws.on('error', (err) => out({ event: 'error', message: String(err?.message ?? err) }));
