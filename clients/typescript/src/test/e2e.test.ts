// End to end over real HTTP: createMeshClient (gRPC-Web over fetch) against an in-process
// connect-node server that implements part of JobService. Checks what the server receives and
// that a server stream arrives intact.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { JobService, JobState, WorkloadClass, WorkloadInputSchema, createMeshClient } from "../index.js";

test("createMeshClient talks gRPC-Web to a connect-node server: auth header, unary and server streaming", async (t) => {
  const seenAuth: (string | null)[] = [];
  const routes = (router: ConnectRouter) =>
    router.service(JobService, {
      async submitJob(req, ctx) {
        seenAuth.push(ctx.requestHeader.get("authorization"));
        if (ctx.requestHeader.get("authorization") !== "Bearer e2e-token") {
          throw new ConnectError("bad token", Code.Unauthenticated);
        }
        const input = fromBinary(WorkloadInputSchema, req.envelope?.inputManifest?.payload ?? new Uint8Array());
        assert.ok(input.input.case === "echo");
        return {
          job: {
            jobId: "job_e2e",
            networkId: req.envelope?.networkId ?? "",
            workloadId: req.envelope?.workloadId ?? WorkloadClass.UNSPECIFIED,
            state: JobState.QUEUED,
            errorMessage: new TextDecoder().decode(input.input.value.data),
          },
        };
      },
      async *watchJob(req, ctx) {
        seenAuth.push(ctx.requestHeader.get("authorization"));
        yield { frame: { case: "status", value: { job: { jobId: req.jobId, state: JobState.RUNNING } } } };
        for (const [index, piece] of ["ec", "ho"].entries()) {
          yield { frame: { case: "token", value: { token: new TextEncoder().encode(piece), index } } };
        }
        yield { frame: { case: "result", value: { output: new Uint8Array([1, 2]), job: { jobId: req.jobId, state: JobState.COMPLETED } } } };
      },
    });

  const server = createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;

  const client = createMeshClient({ baseUrl, token: "e2e-token", networkId: "net_e2e" });
  const job = await client.submitJob(WorkloadClass.DIAGNOSTIC_ECHO, {
    input: { input: { case: "echo", value: { data: new TextEncoder().encode("ping") } } },
  });
  assert.equal(job.jobId, "job_e2e");
  assert.equal(job.networkId, "net_e2e");
  assert.equal(job.workloadId, WorkloadClass.DIAGNOSTIC_ECHO);
  assert.equal(job.errorMessage, "ping", "the server decoded the payload the client serialized");

  const cases: string[] = [];
  let text = "";
  for await (const frame of client.streamJob("job_e2e")) {
    cases.push(frame.frame.case ?? "none");
    if (frame.frame.case === "token") {
      text += new TextDecoder().decode(frame.frame.value.token);
    }
  }
  assert.deepStrictEqual(cases, ["status", "token", "token", "result"]);
  assert.equal(text, "echo");

  const anonymous = createMeshClient({ baseUrl, networkId: "net_e2e" });
  await assert.rejects(
    anonymous.submitJob(WorkloadClass.DIAGNOSTIC_ECHO, { input: { input: { case: "echo", value: {} } } }),
    (err: unknown) => err instanceof ConnectError && err.code === Code.Unauthenticated,
  );
  assert.deepStrictEqual(seenAuth, ["Bearer e2e-token", "Bearer e2e-token", null]);
});
