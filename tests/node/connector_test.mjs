// tiktok-live-connector 2.5.0 against livegate (its sign server) and the simulator (TikTok).
// Env: SIGN_API_URL (livegate), LIVEGATE_API_KEY, ROOM_ID, SIM_URL, STREAMER.
// Prints one JSON object per line: {"event": ...}. Exits 0 once a comment with the text in
// WANT_COMMENT has arrived (after "connected"), 2 on timeout, 1 on a connection error.
import { TikTokLiveConnection, WebcastEvent } from 'tiktok-live-connector';

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const { LIVEGATE_API_KEY, ROOM_ID, STREAMER, WANT_COMMENT } = process.env;
const deadline = setTimeout(() => { out({ event: 'timeout' }); process.exit(2); }, 20000);

const connection = new TikTokLiveConnection(STREAMER, {
    signApiKey: LIVEGATE_API_KEY,
    // No direct TikTok calls: connect(roomId) skips the room-id scrape, and room info is off.
    fetchRoomInfoOnConnect: false,
    processInitialData: true,
});

connection.on(WebcastEvent.CHAT, (data) => {
    const text = data.content ?? data.comment ?? null;
    out({ event: 'chat', comment: text, user: data.user?.displayId ?? data.user?.uniqueId ?? null });
    if (text === WANT_COMMENT) {
        clearTimeout(deadline);
        connection.disconnect().finally(() => process.exit(0));
    }
});

try {
    const state = await connection.connect(ROOM_ID);
    out({ event: 'connected', roomId: String(state.roomId) });
} catch (err) {
    out({ event: 'error', name: err?.constructor?.name ?? 'Error', message: String(err?.message ?? err) });
    clearTimeout(deadline);
    process.exit(1);
}
