// systemd unit files embedded as text (build/crib.service, by src/cli/install.ts).
declare module "*.service" {
  const text: string;
  export default text;
}
