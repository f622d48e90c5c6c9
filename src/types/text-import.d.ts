// Files imported `with { type: "text" }` (Bun embeds them as strings).
declare module "*.proto" {
  const text: string;
  export default text;
}
