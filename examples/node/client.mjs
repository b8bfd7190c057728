// A quorum.v1 client in plain JavaScript (ESM), built from the repository's proto/ only:
// `npm run generate` writes gen/ with buf and protoc-gen-es, Connect speaks gRPC over HTTP/2.
//
//   node client.mjs [host:port]      (default: $QUORUM_TARGET, else 127.0.0.1:50051; plaintext)
//
// Lists the models, asks one question unary and once streamed (temperature 0), then asks an unknown
// model and prints the gRPC status it gets. Exits non-zero on any unexpected error.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FinishReason, InferenceService } from "./gen/quorum/v1/inference_pb.js";

const target = process.argv[2] ?? process.env.QUORUM_TARGET ?? "127.0.0.1:50051";
const QUESTION = "What is the capital of France?";
const UNKNOWN_MODEL = "no-such-model";
const callOptions = { timeoutMs: 120_000 }; // a deadline on every call: the engine may be busy

// Connect names codes in camel case (NotFound); gRPC tooling prints NOT_FOUND.
const statusName = (code) => Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

const client = createClient(InferenceService, createGrpcTransport({ baseUrl: `http://${target}` }));

async function main() {
  const { models } = await client.listModels({}, callOptions);
  for (const model of models) {
    const flags = [model.isDefault && "default", model.ready ? "ready" : "not ready"].filter(Boolean);
    console.log(`model: ${model.id} (${flags.join(", ")}, max_model_len ${model.maxModelLen})`);
  }

  const request = {
    messages: [{ role: "user", content: QUESTION }],
    sampling: { temperature: 0, maxTokens: 16 },
  };
  const reply = await client.chat(request, callOptions);
  const [choice] = reply.choices;
  console.log(`chat: ${JSON.stringify(choice.text)} (finish ${FinishReason[choice.finishReason]}, ` +
    `${reply.usage?.completionTokens} tokens, model ${reply.model})`);

  let chunks = 0;
  let text = "";
  let finish = FinishReason.UNSPECIFIED;
  for await (const message of client.chatStream(request, callOptions)) {
    chunks += 1;
    for (const delta of message.choices) {
      text += delta.text;
      if (delta.finishReason !== FinishReason.UNSPECIFIED) finish = delta.finishReason;
    }
  }
  console.log(`chat_stream: ${JSON.stringify(text)} (${chunks} chunks, finish ${FinishReason[finish]})`);

  try {
    await client.chat({ ...request, model: UNKNOWN_MODEL }, callOptions);
    throw new Error(`model ${UNKNOWN_MODEL} answered; expected NOT_FOUND`);
  } catch (error) {
    const status = ConnectError.from(error);
    if (status.code !== Code.NotFound) throw error;
    console.log(`status: ${statusName(status.code)} (code ${status.code}): ${status.rawMessage}`);
  }
}

main().catch((error) => {
  const status = ConnectError.from(error);
  console.error(`error: ${statusName(status.code)} (code ${status.code}): ${status.rawMessage}`);
  process.exit(1);
});
