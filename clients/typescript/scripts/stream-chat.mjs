// Submits one small_chat job through the BUILT @meshai/client (dist/) over gRPC-Web and prints the WatchJob stream as
// JSON lines, one per frame, so a test in another language can check what a TypeScript caller really receives.
//
//   node scripts/stream-chat.mjs --url https://127.0.0.1:5001 --token <session> --network <id> [--device <id>]
//        [--max-tokens 24] [--prompt "Tell me a story"] [--timeout-ms 120000]
//
// Lines on stdout: {"kind":"submitted","jobId"}, {"kind":"status","state"}, {"kind":"token","index","text","b64"},
// {"kind":"progress"}, {"kind":"log","message"}, and last {"kind":"result","text","completionTokens","finishReason"}.
// The payload is plaintext (PAYLOAD_ENCRYPTION_SCHEME_NONE): end-to-end encryption is a C# SDK feature.
// TLS: a self-signed server certificate must be trusted by the caller (e.g. NODE_EXTRA_CA_CERTS=<server cert PEM>).
// Exits 0 after the result frame; 1 when the job fails, is cancelled or the stream ends without a result.
import { parseArgs } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import {
  createMeshClient,
  ChatRole,
  DataSensitivityTag,
  JobState,
  RoutingMode,
  WorkloadClass,
  WorkloadOutputSchema,
} from "../dist/index.js";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    network: { type: "string" },
    device: { type: "string" },
    "max-tokens": { type: "string", default: "24" },
    prompt: { type: "string", default: "Tell me a story" },
    "timeout-ms": { type: "string", default: "120000" },
  },
});
for (const required of ["url", "token", "network"]) {
  if (!args[required]) {
    console.error(`--${required} is required`);
    process.exit(2);
  }
}

const emit = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const mesh = createMeshClient({ baseUrl: args.url, token: args.token, networkId: args.network });
const job = await mesh.submitJob(
  WorkloadClass.SMALL_CHAT,
  {
    input: {
      input: {
        case: "chat",
        value: {
          maxTokens: Number(args["max-tokens"]),
          contextTokens: 4096,
          messages: [{ role: ChatRole.USER, content: args.prompt }],
        },
      },
    },
  },
  args.device
    ? {
        mode: RoutingMode.PINNED_DEVICE,
        resources: { requiresPinnedDeviceIdsOptional: [args.device] },
        dataSensitivity: DataSensitivityTag.PRIVATE,
        timeoutMs: BigInt(args["timeout-ms"]),
      }
    : { mode: RoutingMode.AUTO, dataSensitivity: DataSensitivityTag.PRIVATE, timeoutMs: BigInt(args["timeout-ms"]) },
);
emit({ kind: "submitted", jobId: job.jobId });

const utf8 = new TextDecoder();
for await (const response of mesh.streamJob(job.jobId)) {
  const frame = response.frame;
  switch (frame.case) {
    case "token":
      emit({
        kind: "token",
        index: frame.value.index,
        text: utf8.decode(frame.value.token),
        b64: Buffer.from(frame.value.token).toString("base64"),
      });
      break;
    case "result": {
      if (frame.value.encrypted) {
        emit({ kind: "error", message: "result is encrypted; this script submits plaintext jobs only" });
        process.exit(1);
      }
      const chat = fromBinary(WorkloadOutputSchema, frame.value.output).output;
      if (chat.case !== "chat") {
        emit({ kind: "error", message: `result is not a chat output (${chat.case ?? "none"})` });
        process.exit(1);
      }
      emit({
        kind: "result",
        text: chat.value.text,
        completionTokens: chat.value.completionTokens,
        finishReason: chat.value.finishReason,
      });
      process.exit(0);
    }
    case "status": {
      const state = frame.value.job?.state ?? JobState.UNSPECIFIED;
      emit({ kind: "status", state: JobState[state] ?? String(state) });
      if (state === JobState.FAILED || state === JobState.CANCELLED) {
        emit({ kind: "error", message: `job ended ${JobState[state]}: ${frame.value.job?.errorMessage ?? ""}` });
        process.exit(1);
      }
      break;
    }
    case "progress":
      emit({ kind: "progress" });
      break;
    case "log":
      emit({ kind: "log", message: frame.value.message });
      break;
    default:
      emit({ kind: "unknown" });
  }
}
emit({ kind: "error", message: "the WatchJob stream ended without a result frame" });
process.exit(1);
