// The device side of @meshai/client that the C# interop tests (tests/MeshAI.Unit.Tests/Agent/DeviceInteropTests.cs) do not
// reach: the async payload decryption with a non-extractable WebCrypto X25519 key (the browser device's real key), the
// contribution rules, pooling, and a tokenizer on a small vocabulary.
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";

import {
  InputManifestSchema,
  JobEnvelopeSchema,
  MobileContributionPolicy,
  NetworkType,
  ThermalState,
  WordPieceTokenizer,
  cosine,
  decideContribution,
  decryptEnvelope,
  decryptEnvelopeWith,
  encryptEnvelope,
  generateX25519KeyPair,
  meanPoolAndNormalize,
  signalFields,
} from "../index.js";
import type { DeviceSignals } from "../index.js";

test("a payload sealed for a device opens with its non-extractable WebCrypto X25519 key, to the same bytes as with the raw key", async () => {
  const pair = (await globalThis.crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"])) as CryptoKeyPair;
  const publicKey = new Uint8Array(await globalThis.crypto.subtle.exportKey("raw", pair.publicKey));
  const other = generateX25519KeyPair();
  const payload = new TextEncoder().encode("texts for the phone");
  const envelope = create(JobEnvelopeSchema, { networkId: "net_1", workloadId: 1, inputManifest: create(InputManifestSchema, { payload }) });
  encryptEnvelope(envelope, [{ deviceId: "dev_phone", publicKey }, { deviceId: "dev_laptop", publicKey: other.publicKey }], generateX25519KeyPair().publicKey);

  const agreement = {
    publicKey,
    async sharedSecret(peer: Uint8Array) {
      const peerKey = await globalThis.crypto.subtle.importKey("raw", peer as Uint8Array<ArrayBuffer>, { name: "X25519" }, true, []);
      return new Uint8Array(await globalThis.crypto.subtle.deriveBits({ name: "X25519", public: peerKey }, pair.privateKey, 256));
    },
  };
  assert.deepStrictEqual(await decryptEnvelopeWith(envelope, "dev_phone", agreement), payload);
  assert.deepStrictEqual(decryptEnvelope(envelope, "dev_laptop", other), payload, "the raw-key path opens its own copy");
  await assert.rejects(decryptEnvelopeWith(envelope, "dev_laptop", agreement), /does not authenticate/, "a key wrapped for another device does not open");
  await assert.rejects(decryptEnvelopeWith(envelope, "dev_nobody", agreement), /not wrapped for device dev_nobody/);
});

const phone: DeviceSignals = { battery: { percent: 80, charging: true }, network: "wifi", thermal: ThermalState.NOMINAL, visible: true };
const defaults = { mobileContributionPolicy: MobileContributionPolicy.CHARGING_AND_WIFI_ONLY, minBatteryPercent: 30, maxThermalLevel: 3 } as never;
const on = { switchedOn: true, adminEnabled: true, mobile: true };

test("a charging phone on Wi-Fi, cool and on screen contributes under the network's defaults", () => {
  const decision = decideContribution(phone, defaults, on);
  assert.equal(decision.allowed, true, decision.reason);
  assert.deepStrictEqual(decision.rules.map((r) => r.id), ["switch", "admin", "visible", "charging", "wifi", "battery", "thermal"]);
});

test("each rule stops contribution and says why", () => {
  const cases: [Partial<DeviceSignals>, Partial<typeof on>, string][] = [
    [{ battery: { percent: 80, charging: false } }, {}, "not charging"],
    [{ network: "cellular" }, {}, "on cellular data"],
    [{ thermal: ThermalState.SERIOUS }, {}, "running hot (serious pressure)"],
    [{ visible: false }, {}, "the page is hidden (phones pause hidden pages)"],
    [{}, { switchedOn: false }, "contribution is switched off on this page"],
    [{}, { adminEnabled: false }, "an admin switched contribution off for this device"],
  ];
  for (const [signals, options, reason] of cases) {
    const decision = decideContribution({ ...phone, ...signals }, defaults, { ...on, ...options });
    assert.equal(decision.allowed, false, reason);
    assert.equal(decision.reason, reason);
  }
});

test("a rule the browser cannot check is named and counts as not met (the safe choice)", () => {
  const decision = decideContribution({ visible: true }, defaults, on);
  assert.equal(decision.allowed, false);
  assert.deepStrictEqual(
    decision.rules.filter((r) => r.state === "unknown").map((r) => r.id),
    ["charging", "wifi", "battery", "thermal"],
  );
  assert.match(decision.reason, /no Battery Status API/);
  const laptop = decideContribution({ visible: true }, defaults, { ...on, mobile: false });
  assert.equal(laptop.allowed, true, "the mobile rules do not apply to a laptop's browser");
});

test("the network's policy decides which mobile rules apply", () => {
  const always = { ...(defaults as object), mobileContributionPolicy: MobileContributionPolicy.ALWAYS } as never;
  assert.equal(decideContribution({ ...phone, network: "cellular", battery: { percent: 50, charging: false } }, always, on).allowed, true);
  assert.equal(decideContribution({ ...phone, battery: { percent: 20, charging: false } }, always, on).reason, "battery 20% is below 30%");
  const never = { ...(defaults as object), mobileContributionPolicy: MobileContributionPolicy.NEVER } as never;
  assert.equal(decideContribution(phone, never, on).reason, "this network takes no work from phones");
});

test("signals become the capability report's battery, network and thermal fields", () => {
  assert.deepStrictEqual(signalFields(phone), {
    batteryStateOptional: { percent: 80, charging: true, pluggedIn: true },
    networkType: NetworkType.WIFI,
    thermalStateOptional: ThermalState.NOMINAL,
  });
  assert.deepStrictEqual(signalFields({ visible: true }), { networkType: NetworkType.UNSPECIFIED, thermalStateOptional: ThermalState.UNSPECIFIED });
});

test("mean pooling keeps only masked tokens and returns unit vectors", () => {
  // batch 1, seq 3, dim 2; the third token is padding.
  const hidden = [1, 0, 3, 4, 100, 100];
  const [vector] = meanPoolAndNormalize(hidden, [1n, 1n, 0n], 1, 3, 2);
  assert.ok(vector);
  assert.ok(Math.abs(cosine(vector, [2, 2]) - 1) < 1e-6);
  assert.ok(Math.abs(Math.hypot(vector[0]!, vector[1]!) - 1) < 1e-6);
});

test("WordPiece: lower-case, punctuation split, ## pieces, [UNK] for unknown words, [CLS] … [SEP], whole-word truncation", () => {
  const vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "un", "##believ", "##able", ",", "!"].join("\n");
  const tokenizer = WordPieceTokenizer.fromVocab(vocab);
  assert.deepStrictEqual(tokenizer.encode("The CAT, unbelievable!", 128), [2, 5, 6, 11, 8, 9, 10, 12, 3]);
  assert.deepStrictEqual(tokenizer.encode("the dog", 128), [2, 5, 1, 3]);
  assert.deepStrictEqual(tokenizer.encode("the unbelievable cat", 4), [2, 5, 3], "a word that does not fit is left out whole");
  assert.deepStrictEqual(tokenizer.encode("", 128), [2, 3]);
});
