// The official `openai` npm client against a MeshAI server's OpenAI-compatible gateway. Driven by
// tests/MeshAI.EndToEnd.Tests/OpenAiClientsEndToEndTests.cs, which starts the real server and a real agent whose chat
// upstream holds its answer after the first token until someone GETs its /release URL: this script releases it only
// after the first streamed token has reached it, so tokens provably arrive before the answer ends.
//
// Environment: MESHAI_OPENAI_BASE_URL (https://127.0.0.1:PORT/v1), MESHAI_OPENAI_API_KEY, MESHAI_UPSTREAM_RELEASE_URL,
// MESHAI_EMBEDDINGS_MODEL, MESHAI_CHAT_MODEL; NODE_EXTRA_CA_CERTS names the server's certificate (server.pem).
// Prints one JSON object on stdout; exits non-zero on an unexpected failure.
import OpenAI from 'openai';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const client = new OpenAI({ baseURL: env('MESHAI_OPENAI_BASE_URL'), apiKey: env('MESHAI_OPENAI_API_KEY'), maxRetries: 0, timeout: 120_000 });
const result = {};

// Embeddings: the client asks for base64 by default and decodes it into numbers itself.
const sentences = ['a cat sat on the mat', 'a kitten rested on the rug', 'quarterly revenue grew 4 %'];
const embeddings = await client.embeddings.create({ model: env('MESHAI_EMBEDDINGS_MODEL'), input: sentences }).withResponse();
const vectors = embeddings.data.data.map((d) => Array.from(d.embedding));
const cosine = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0) / Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
result.embeddings = {
  count: vectors.length,
  dimensions: vectors[0].length,
  model: embeddings.data.model,
  promptTokens: embeddings.data.usage.prompt_tokens,
  related: cosine(vectors[0], vectors[1]),
  unrelated: cosine(vectors[0], vectors[2]),
  jobId: embeddings.response.headers.get('x-meshai-job-id'),
};

// Streamed chat: count the chunks that arrived while the upstream still held the rest of the answer.
const stream = await client.chat.completions
  .create({ model: env('MESHAI_CHAT_MODEL'), stream: true, max_tokens: 64, messages: [{ role: 'user', content: 'say hello to the mesh' }] })
  .withResponse();
let text = '';
let tokensBeforeRelease = null;
let finishReason = null;
let chunks = 0;
let id = null;
for await (const chunk of stream.data) {
  chunks++;
  id ??= chunk.id;
  const choice = chunk.choices[0];
  if (choice?.finish_reason) finishReason = choice.finish_reason;
  const delta = choice?.delta?.content ?? '';
  if (!delta) continue;
  text += delta;
  if (tokensBeforeRelease === null) {
    tokensBeforeRelease = text;
    const released = await fetch(env('MESHAI_UPSTREAM_RELEASE_URL'));
    if (!released.ok) throw new Error(`release failed: ${released.status}`);
  }
}
result.chat = { text, tokensBeforeRelease, finishReason, chunks, id, jobId: stream.response.headers.get('x-meshai-job-id') };

// Errors arrive as the client's own typed errors, with OpenAI's status codes and error codes.
const errors = {};
try {
  await client.embeddings.create({ model: 'gpt-4o', input: 'x' });
  errors.unknownModel = 'no error';
} catch (e) {
  errors.unknownModel = { class: e.constructor.name, status: e.status, code: e.code, type: e.type, message: e.message };
}
try {
  await new OpenAI({ baseURL: env('MESHAI_OPENAI_BASE_URL'), apiKey: 'mak_not-a-real-key', maxRetries: 0 }).models.list();
  errors.badKey = 'no error';
} catch (e) {
  errors.badKey = { class: e.constructor.name, status: e.status, code: e.code, type: e.type, message: e.message };
}
try {
  await client.chat.completions.create({ model: env('MESHAI_CHAT_MODEL'), messages: [] });
  errors.noMessages = 'no error';
} catch (e) {
  errors.noMessages = { class: e.constructor.name, status: e.status, code: e.code, type: e.type, param: e.param, message: e.message };
}
result.errors = errors;

const models = [];
for await (const model of client.models.list()) models.push(model.id);
result.models = models;

process.stdout.write(JSON.stringify(result) + '\n');
