// Drives a running volt-node's HTTP API with the official OpenAI client for
// Node.js and prints one JSON verdict per line: {"name", "ok", "detail"}.
// Exit code 0 when every check passed.
//
// Environment: VOLT_API_URL (http://127.0.0.1:PORT/v1), VOLT_REFERENCE (the
// fixture's reference.json), VOLT_NPM_DIR (where `npm install openai` put
// node_modules), VOLT_API_KEY (a key of the node's [http] api_keys_file).

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.env.VOLT_NPM_DIR, 'package.json'));
const { OpenAI } = require('openai');

const client = new OpenAI({ baseURL: process.env.VOLT_API_URL, apiKey: process.env.VOLT_API_KEY, maxRetries: 0 });
const reference = JSON.parse(readFileSync(process.env.VOLT_REFERENCE, 'utf8'));
const model = 'tiny-mixtral-text-a';
let failed = 0;

function verdict(name, ok, detail = '') {
  if (!ok) failed++;
  console.log(JSON.stringify({ name, ok, detail }));
}

function equal(name, got, want) {
  const same = JSON.stringify(got) === JSON.stringify(want);
  verdict(name, same, same ? '' : `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

// The reference decoded the new tokens alone; in context the first token may
// keep its leading space.
function sameText(got, want) {
  return got === want || got === ' ' + want;
}

async function check(name, body) {
  try {
    await body();
  } catch (e) {
    verdict(name, false, `threw ${e?.constructor?.name}: ${e?.message}`);
  }
}

/// Collects a streamed completion: text per choice, finish reasons, usage.
async function collect(stream, chat) {
  const text = {}, finish = {};
  let usage = null, chunks = 0, roleFirst = true;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      const piece = chat ? c.delta?.content ?? '' : c.text;
      if (chat && text[c.index] === undefined && c.delta?.role !== 'assistant') roleFirst = false;
      text[c.index] = (text[c.index] ?? '') + piece;
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  return { text, finish, usage, chunks, roleFirst };
}

await check('models.list', async () => {
  const list = await client.models.list();
  equal('models.list', list.data.map((m) => m.id), [model]);
});

for (const [i, c] of reference.cases.entries()) {
  await check(`greedy completion ${i}`, async () => {
    const r = await client.completions.create({
      model, prompt: c.prompt, max_tokens: c.greedy_new_tokens.length, temperature: 0,
    });
    const text = r.choices[0].text;
    verdict(`greedy completion ${i} text`, sameText(text, c.greedy_text),
            `got ${JSON.stringify(text)}, want ${JSON.stringify(c.greedy_text)}`);
    equal(`greedy completion ${i} finish_reason`, r.choices[0].finish_reason, 'length');
    equal(`greedy completion ${i} usage`, [r.usage.prompt_tokens, r.usage.completion_tokens],
          [c.input_ids.length, c.greedy_new_tokens.length]);
  });
}

const c0 = reference.cases[0];

await check('streamed completion', async () => {
  const stream = await client.completions.create({
    model, prompt: c0.prompt, max_tokens: c0.greedy_new_tokens.length, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  const got = await collect(stream, false);
  verdict('streamed completion text', sameText(got.text[0], c0.greedy_text), JSON.stringify(got.text[0]));
  verdict('streamed completion chunks', got.chunks > 2, `${got.chunks} chunks`);
  equal('streamed completion finish_reason', got.finish[0], 'length');
  equal('streamed completion usage', got.usage?.completion_tokens, c0.greedy_new_tokens.length);
});

await check('stop string', async () => {
  const cut = c0.greedy_text.indexOf('\n\n');
  const want = c0.greedy_text.slice(0, cut);
  const params = { model, prompt: c0.prompt, max_tokens: 32, temperature: 0, stop: ['\n\n'] };
  const whole = await client.completions.create(params);
  verdict('stop string text', sameText(whole.choices[0].text, want), JSON.stringify(whole.choices[0].text));
  equal('stop string finish_reason', whole.choices[0].finish_reason, 'stop');
  verdict('stop string usage', whole.usage.completion_tokens < 32, `${whole.usage.completion_tokens} tokens`);
  const streamed = await collect(await client.completions.create({ ...params, stream: true }), false);
  equal('stop string streamed text', streamed.text[0], whole.choices[0].text);
  equal('stop string streamed finish_reason', streamed.finish[0], 'stop');
});

await check('n = 2 and seeds', async () => {
  const params = { model, prompt: c0.prompt, max_tokens: 12, temperature: 1, seed: 42, n: 2 };
  const a = await client.completions.create(params);
  const b = await client.completions.create(params);
  equal('n = 2 choice indices', a.choices.map((c) => c.index).sort(), [0, 1]);
  equal('same seed, same choices', b.choices.map((c) => c.text), a.choices.map((c) => c.text));
  verdict('n = 2 choices differ', a.choices[0].text !== a.choices[1].text, JSON.stringify(a.choices));
  const other = await client.completions.create({ ...params, seed: 7 });
  verdict('another seed, other text', JSON.stringify(other.choices) !== JSON.stringify(a.choices));
  const streamed = await collect(await client.completions.create({ ...params, stream: true }), false);
  equal('n = 2 streamed equals whole', [streamed.text[0], streamed.text[1]], a.choices.map((c) => c.text));
});

await check('echo', async () => {
  const r = await client.completions.create({ model, prompt: c0.prompt, max_tokens: 4, temperature: 0, echo: true });
  verdict('echo starts with the prompt', r.choices[0].text.startsWith(c0.prompt), JSON.stringify(r.choices[0].text));
});

await check('chat', async () => {
  const messages = [{ role: 'system', content: 'You write Python.' }, { role: 'user', content: c0.prompt }];
  const r = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
  equal('chat object', r.object, 'chat.completion');
  equal('chat role', r.choices[0].message.role, 'assistant');
  verdict('chat content', typeof r.choices[0].message.content === 'string' && r.choices[0].message.content.length > 0,
          JSON.stringify(r.choices[0].message));
  equal('chat finish_reason', r.choices[0].finish_reason, 'length');
  equal('chat usage', r.usage.completion_tokens, 16);
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 16, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  const got = await collect(stream, true);
  equal('chat streamed content', got.text[0], r.choices[0].message.content);
  verdict('chat streamed role first', got.roleFirst);
  equal('chat streamed usage', got.usage?.total_tokens, r.usage.total_tokens);
  const two = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0.8, n: 2, seed: 3 });
  equal('chat n = 2', two.choices.length, 2);
});

await check('completion logprobs', async () => {
  const params = { model, prompt: c0.prompt, max_tokens: 6, temperature: 0, logprobs: 3 };
  const r = await client.completions.create(params);
  const lp = r.choices[0].logprobs;
  equal('logprobs per token', [lp.tokens.length, lp.token_logprobs.length, lp.top_logprobs.length, lp.text_offset.length],
        [6, 6, 6, 6]);
  equal('logprobs tokens spell the text', lp.tokens.join(''), r.choices[0].text);
  verdict('logprobs are log-probabilities', lp.token_logprobs.every((x) => x <= 0), JSON.stringify(lp.token_logprobs));
  verdict('three alternatives each', lp.top_logprobs.every((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 3),
          JSON.stringify(lp.top_logprobs));
  // Greedy picks the most likely token: it leads its alternatives.
  verdict('greedy token is the most likely', lp.tokens.every((t, i) =>
    Math.abs(Math.max(...Object.values(lp.top_logprobs[i])) - lp.token_logprobs[i]) < 1e-5), JSON.stringify(lp));
  verdict('text offsets grow', lp.text_offset.every((x, i) => i === 0 || x >= lp.text_offset[i - 1]), JSON.stringify(lp.text_offset));
  const streamed = await client.completions.create({ ...params, stream: true });
  const tokens = [];
  for await (const chunk of streamed)
    for (const c of chunk.choices) tokens.push(...(c.logprobs?.tokens ?? []));
  equal('streamed logprobs tokens', tokens, lp.tokens);
  const none = await client.completions.create({ ...params, logprobs: 0 });
  verdict('logprobs 0 has no alternatives', none.choices[0].logprobs.top_logprobs.every((t) => Object.keys(t).length === 0),
          JSON.stringify(none.choices[0].logprobs));
});

await check('chat logprobs', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: c0.prompt }], max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  equal('chat logprobs per token', content.length, 5);
  verdict('chat top_logprobs', content.every((t) => t.top_logprobs.length === 2 && Array.isArray(t.bytes)
    && t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob), JSON.stringify(content[0]));
  const spelled = content.map((t) => t.token).join('');
  verdict('chat logprobs spell the content', sameText(spelled, r.choices[0].message.content) || sameText(r.choices[0].message.content, spelled),
          JSON.stringify([spelled, r.choices[0].message.content]));
});

await check('stop token ids', async () => {
  // The greedy continuation's fifth token ends it.
  const stopId = c0.greedy_new_tokens[4];
  const r = await client.completions.create({ model, prompt: c0.prompt, max_tokens: 32, temperature: 0, stop_token_ids: [stopId] });
  equal('stop token ids finish_reason', r.choices[0].finish_reason, 'stop');
  verdict('stop token ids length', r.usage.completion_tokens <= 5, `${r.usage.completion_tokens} tokens`);
});

async function expectError(name, body, status, param) {
  try {
    await body();
    verdict(name, false, 'no error');
  } catch (e) {
    const ok = e instanceof OpenAI.APIError && e.status === status && (param === undefined || e.param === param);
    verdict(name, ok, `status ${e.status}, param ${e.param}, message ${e.message}`);
  }
}

await expectError('bad temperature', () => client.completions.create({ model, prompt: 'x', temperature: 9 }), 400, 'temperature');
await expectError('unknown model', () => client.completions.create({ model: 'gpt-4', prompt: 'x' }), 404, 'model');
await expectError('bad chat role', () => client.chat.completions.create({ model, messages: [{ role: 'robot', content: 'x' }] }), 400, 'messages');
await expectError('too long', () => client.completions.create({ model, prompt: Array(2000).fill(5) }), 413, 'prompt');
await expectError('bad n', () => client.completions.create({ model, prompt: 'x', n: 0 }), 400, 'n');
await expectError('echo with logprobs', () => client.completions.create({ model, prompt: 'x', echo: true, logprobs: 1 }), 400, 'echo');
await expectError('unsupported penalty', () => client.completions.create({ model, prompt: 'x', presence_penalty: 1 }), 400, 'presence_penalty');

// Another key: the client's own AuthenticationError, with OpenAI's code.
async function expectAuthError(name, apiKey) {
  const stranger = new OpenAI({ baseURL: process.env.VOLT_API_URL, apiKey, maxRetries: 0 });
  for (const [what, call] of [['models', () => stranger.models.list()],
    ['completion', () => stranger.completions.create({ model, prompt: 'x', max_tokens: 1 })]]) {
    try {
      await call();
      verdict(`${name} ${what}`, false, 'no error');
    } catch (e) {
      const ok = e instanceof OpenAI.AuthenticationError && e.status === 401 && e.code === 'invalid_api_key';
      verdict(`${name} ${what}`, ok, `${e?.constructor?.name}: status ${e.status}, code ${e.code}, message ${e.message}`);
    }
  }
}

await expectAuthError('a wrong key gets AuthenticationError', 'sk-not-a-key-of-this-node');
await expectAuthError('the right key with a typo gets AuthenticationError', `${process.env.VOLT_API_KEY}x`);

process.exit(failed === 0 ? 0 : 1);
