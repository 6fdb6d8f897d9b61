// Before the tests (`npm test`, `npm run test:browser`): the binary they all start, built
// here rather than inside the first test's timeout.
import { buildTollgate } from "./server.js";

buildTollgate();
