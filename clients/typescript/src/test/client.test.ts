// createMeshClient against a fake fetch that speaks gRPC-Web: the auth header, the request bodies the
// helpers build and the responses they decode.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  BillingMode,
  CreateNetworkRequestSchema,
  CreateNetworkResponseSchema,
  GetBalancesRequestSchema,
  GetBalancesResponseSchema,
  InviteMemberRequestSchema,
  InviteMemberResponseSchema,
  InviteType,
  JobState,
  LedgerEventType,
  ListLedgerEventsRequestSchema,
  ListLedgerEventsResponseSchema,
  NetworkVisibility,
  PayloadEncryptionScheme,
  Role,
  RoutingMode,
  SubmitJobRequestSchema,
  SubmitJobResponseSchema,
  WatchJobRequestSchema,
  WatchJobResponseSchema,
  WorkloadClass,
  WorkloadInputSchema,
  createMeshClient,
} from "../index.js";
import type { WatchJobResponse } from "../index.js";
import { fakeFetch, grpcWebMessages } from "../test-support/support.js";

const BASE = "https://mesh.test/api";

function onlyMessage(body: Uint8Array): Uint8Array {
  const messages = grpcWebMessages(body);
  assert.equal(messages.length, 1, "a unary request carries exactly one message");
  return messages[0] ?? new Uint8Array();
}

test("createMeshClient: the auth interceptor sends authorization: Bearer <token> on a unary call", async () => {
  const fake = fakeFetch(() => ({
    messages: [toBinary(CreateNetworkResponseSchema, create(CreateNetworkResponseSchema, { network: { networkId: "net_1", name: "home" } }))],
  }));
  const client = createMeshClient({ baseUrl: BASE, token: "tok-123", fetch: fake.fetch });
  assert.ok(client.transport, "a transport is built");

  const network = await client.createNetwork("home");

  assert.equal(fake.requests.length, 1);
  const req = fake.requests[0];
  assert.ok(req);
  assert.equal(req.headers.get("authorization"), "Bearer tok-123");
  assert.equal(req.method, "POST");
  assert.equal(req.url, `${BASE}/meshai.network.v1.NetworkService/CreateNetwork`);
  assert.match(req.headers.get("content-type") ?? "", /^application\/grpc-web\+proto/);

  const sent = fromBinary(CreateNetworkRequestSchema, onlyMessage(req.body));
  assert.equal(sent.name, "home");
  assert.equal(sent.visibility, NetworkVisibility.PRIVATE);
  assert.equal(sent.billingMode, BillingMode.CREDITS_INTERNAL);

  assert.equal(network.networkId, "net_1");
  assert.equal(network.name, "home");
});

test("createMeshClient: no token, no authorization header; a token function is asked on every call", async () => {
  const respond = () => ({ messages: [toBinary(InviteMemberResponseSchema, create(InviteMemberResponseSchema, { inviteLink: "https://l" }))] });

  const anonymous = fakeFetch(respond);
  await createMeshClient({ baseUrl: BASE, fetch: anonymous.fetch }).inviteMember("net_1", "bob@example.com");
  assert.equal(anonymous.requests[0]?.headers.has("authorization"), false);

  let calls = 0;
  const rotating = fakeFetch(respond);
  const client = createMeshClient({ baseUrl: BASE, fetch: rotating.fetch, token: async () => `t${++calls}` });
  await client.network.inviteMember({ networkId: "net_1" });
  await client.network.inviteMember({ networkId: "net_1" });
  assert.deepStrictEqual(
    rotating.requests.map((r) => r.headers.get("authorization")),
    ["Bearer t1", "Bearer t2"],
  );
});

test("inviteMember: picks the invite type from the invitee and defaults the role to member", async () => {
  const fake = fakeFetch(() => ({
    messages: [toBinary(InviteMemberResponseSchema, create(InviteMemberResponseSchema, { inviteLink: "https://mesh.test/i/abc" }))],
  }));
  const client = createMeshClient({ baseUrl: BASE, token: "t", fetch: fake.fetch });
  const res = await client.inviteMember("net_1", "bob@example.com");
  await client.inviteMember("net_1", "carol");
  await client.inviteMember("net_1", "", { role: Role.GUEST });

  assert.equal(res.inviteLink, "https://mesh.test/i/abc");
  const sent = fake.requests.map((r) => fromBinary(InviteMemberRequestSchema, onlyMessage(r.body)));
  assert.deepStrictEqual(
    sent.map((s) => [s.networkId, s.invitee, s.inviteType, s.role]),
    [
      ["net_1", "bob@example.com", InviteType.EMAIL, Role.MEMBER],
      ["net_1", "carol", InviteType.USERNAME, Role.MEMBER],
      ["net_1", "", InviteType.SHARE_LINK_WITH_APPROVAL, Role.GUEST],
    ],
  );
  assert.ok(fake.requests.every((r) => r.url.endsWith("/meshai.network.v1.NetworkService/InviteMember")));
});

test("a gRPC error status surfaces as a ConnectError with its code", async () => {
  const fake = fakeFetch(() => ({ status: 16, message: "session expired" }));
  const client = createMeshClient({ baseUrl: BASE, token: "stale", fetch: fake.fetch });
  await assert.rejects(client.createNetwork("x"), (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.Unauthenticated);
    assert.equal(err.rawMessage, "session expired");
    return true;
  });
  assert.equal(fake.requests[0]?.headers.get("authorization"), "Bearer stale");
});

test("submitJob: builds the envelope (payload, sha256, routing) and returns the job", async () => {
  const fake = fakeFetch(() => ({
    messages: [
      toBinary(
        SubmitJobResponseSchema,
        create(SubmitJobResponseSchema, { job: { jobId: "job_9", networkId: "net_1", state: JobState.QUEUED } }),
      ),
    ],
  }));
  const client = createMeshClient({ baseUrl: BASE, token: "t", fetch: fake.fetch, networkId: "net_1" });

  const job = await client.submitJob(
    WorkloadClass.SMALL_CHAT,
    { input: { input: { case: "chat", value: { messages: [{ content: "hi" }], maxTokens: 16 } } }, labels: { app: "test" } },
    { mode: RoutingMode.LOCAL_PREFER, maxCostMicro: 9_007_199_254_740_993n, traceId: "trace-1", idempotencyKey: "k1" },
  );

  assert.equal(job.jobId, "job_9");
  assert.equal(job.state, JobState.QUEUED);
  const req = fake.requests[0];
  assert.ok(req);
  assert.equal(req.url, `${BASE}/meshai.job.v1.JobService/SubmitJob`);
  assert.equal(req.headers.get("authorization"), "Bearer t");
  const sent = fromBinary(SubmitJobRequestSchema, onlyMessage(req.body));
  assert.equal(sent.idempotencyKey, "k1");
  const env = sent.envelope;
  assert.ok(env);
  assert.equal(env.networkId, "net_1");
  assert.equal(env.workloadId, WorkloadClass.SMALL_CHAT);
  assert.equal(env.routingMode, RoutingMode.LOCAL_PREFER);
  assert.equal(env.maxCostMicro, 9_007_199_254_740_993n);
  assert.equal(env.maxCostCredits, 0n, "the deprecated alias is not sent");
  assert.equal(env.traceId, "trace-1");
  assert.equal(env.payloadEncryption?.scheme, PayloadEncryptionScheme.NONE);
  const im = env.inputManifest;
  assert.ok(im);
  assert.deepStrictEqual({ ...im.labels }, { app: "test" });
  assert.equal(im.payloadSha256, createHash("sha256").update(im.payload).digest("hex"));
  const input = fromBinary(WorkloadInputSchema, im.payload);
  assert.ok(input.input.case === "chat");
  assert.equal(input.input.value.messages[0]?.content, "hi");
  assert.equal(input.input.value.maxTokens, 16);
});

test("submitJob: rejects an input that does not match the workload, and a missing network, before any request", async () => {
  const fake = fakeFetch(() => ({ messages: [] }));
  const client = createMeshClient({ baseUrl: BASE, fetch: fake.fetch });
  await assert.rejects(
    client.submitJob(WorkloadClass.EMBEDDINGS, { input: { input: { case: "echo", value: {} } } }, { networkId: "net_1" }),
    /takes input "embeddings", got "echo"/,
  );
  await assert.rejects(
    client.submitJob(WorkloadClass.DIAGNOSTIC_ECHO, { input: { input: { case: "echo", value: {} } } }),
    /networkId is required/,
  );
  assert.equal(fake.requests.length, 0);
});

test("streamJob: yields every WatchJob frame of the server stream in order", async () => {
  const frames = [
    create(WatchJobResponseSchema, { frame: { case: "status", value: { job: { jobId: "job_9", state: JobState.RUNNING } } } }),
    create(WatchJobResponseSchema, { frame: { case: "token", value: { token: new TextEncoder().encode("Hel"), index: 0 } } }),
    create(WatchJobResponseSchema, { frame: { case: "token", value: { token: new TextEncoder().encode("lo"), index: 1 } } }),
    create(WatchJobResponseSchema, { frame: { case: "result", value: { output: new Uint8Array([7]), job: { jobId: "job_9", state: JobState.COMPLETED } } } }),
  ];
  const fake = fakeFetch(() => ({ messages: frames.map((f) => toBinary(WatchJobResponseSchema, f)) }));
  const client = createMeshClient({ baseUrl: BASE, token: "t", fetch: fake.fetch, networkId: "net_1" });

  const got: WatchJobResponse[] = [];
  for await (const frame of client.streamJob("job_9")) {
    got.push(frame);
  }

  assert.deepStrictEqual(got.map((f) => f.frame.case), ["status", "token", "token", "result"]);
  const text = got
    .map((f) => (f.frame.case === "token" ? new TextDecoder().decode(f.frame.value.token) : ""))
    .join("");
  assert.equal(text, "Hello");
  const last = got[3];
  assert.ok(last?.frame.case === "result");
  assert.deepStrictEqual([...last.frame.value.output], [7]);
  assert.equal(last.frame.value.job?.state, JobState.COMPLETED);

  const req = fake.requests[0];
  assert.ok(req);
  assert.equal(req.url, `${BASE}/meshai.job.v1.JobService/WatchJob`);
  assert.equal(req.headers.get("authorization"), "Bearer t");
  const sent = fromBinary(WatchJobRequestSchema, onlyMessage(req.body));
  assert.equal(sent.networkId, "net_1");
  assert.equal(sent.jobId, "job_9");
});

test("getLedger: balances and the first page of events of a network", async () => {
  const fake = fakeFetch((req) => {
    if (req.url.endsWith("/GetBalances")) {
      assert.equal(fromBinary(GetBalancesRequestSchema, onlyMessage(req.body)).networkId, "net_1");
      return {
        messages: [
          toBinary(
            GetBalancesResponseSchema,
            create(GetBalancesResponseSchema, { balances: { networkId: "net_1", poolBalanceMicro: 5_000_000n } }),
          ),
        ],
      };
    }
    const sent = fromBinary(ListLedgerEventsRequestSchema, onlyMessage(req.body));
    assert.equal(sent.networkId, "net_1");
    assert.equal(sent.pageSize, 2);
    return {
      messages: [
        toBinary(
          ListLedgerEventsResponseSchema,
          create(ListLedgerEventsResponseSchema, {
            events: [
              { sequence: 1n, eventType: LedgerEventType.CREDITS_GRANTED, amountMicro: 5_000_000n },
              { sequence: 2n, eventType: LedgerEventType.CREDITS_BURNED, amountMicro: -1_500n },
            ],
            nextPageToken: "p2",
          }),
        ),
      ],
    };
  });
  const client = createMeshClient({ baseUrl: BASE, token: "t", fetch: fake.fetch });

  const ledger = await client.getLedger("net_1", { pageSize: 2 });

  assert.equal(ledger.balances?.networkId, "net_1");
  assert.equal(ledger.balances?.poolBalanceMicro, 5_000_000n);
  assert.deepStrictEqual(
    ledger.events.map((e) => [e.sequence, e.eventType, e.amountMicro]),
    [
      [1n, LedgerEventType.CREDITS_GRANTED, 5_000_000n],
      [2n, LedgerEventType.CREDITS_BURNED, -1_500n],
    ],
  );
  assert.equal(ledger.nextPageToken, "p2");
  assert.deepStrictEqual(
    fake.requests.map((r) => r.url.slice(BASE.length)).sort(),
    ["/meshai.ledger.v1.LedgerService/GetBalances", "/meshai.ledger.v1.LedgerService/ListLedgerEvents"],
  );
  assert.ok(fake.requests.every((r) => r.headers.get("authorization") === "Bearer t"));
});

test("createMeshClient exposes a typed client per service", () => {
  const client = createMeshClient({ baseUrl: BASE });
  assert.equal(typeof client.identity.getCurrentUser, "function");
  assert.equal(typeof client.network.createNetwork, "function");
  assert.equal(typeof client.device.registerDevice, "function");
  assert.equal(typeof client.job.watchJob, "function");
  assert.equal(typeof client.ledger.getBalances, "function");
  assert.equal(typeof client.policy.evaluatePolicy, "function");
  assert.equal(typeof client.model.listModelManifests, "function");
  assert.equal(typeof client.audit.listAuditEvents, "function");
});
